"""Mailing the report through SMTP (the standard library's smtplib): the page as the HTML
body, the file attached. Settings from dlt config ``[sources.tencent_desk.report.smtp]``
(env SOURCES__TENCENT_DESK__REPORT__SMTP__<KEY>); the password from secrets.toml there."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from tencent_desk.core import redact
from tencent_desk.core.apps import setting
from tencent_desk.core.errors import JobError

SECTION = "sources.tencent_desk.report.smtp"
SECURITY = ("starttls", "tls", "none")
DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
EXIT_MAIL = 8  # the page is written, the mail is not sent


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    security: str = "starttls"
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "desk-sessions@localhost"
    timeout_s: float = 30.0
    # the certificates trusted instead of the system's (a private CA, a self-signed server)
    ca_file: Path | None = None

    def tls(self) -> ssl.SSLContext:
        """Verification always on: the server's certificate and name, against ``ca_file``
        or the system's certificates."""
        return ssl.create_default_context(cafile=None if self.ca_file is None
                                          else str(self.ca_file))


def from_config() -> Smtp:
    """The SMTP settings; one line naming what is missing or wrong."""
    host = setting("report.smtp.host")
    if not host:
        raise JobError(f"--mail-to needs an SMTP server: set host under [{SECTION}] in "
                       ".dlt/config.toml (or SOURCES__TENCENT_DESK__REPORT__SMTP__HOST)",
                       EXIT_MAIL)
    security = str(setting("report.smtp.security") or "starttls").strip().lower()
    if security not in SECURITY:
        raise JobError(f"[{SECTION}] security = {security[:20]!r}: give one of "
                       f"{', '.join(SECURITY)}", EXIT_MAIL)
    try:
        port = int(str(setting("report.smtp.port") or DEFAULT_PORTS[security]))
        timeout = float(str(setting("report.smtp.timeout") or 30))
    except ValueError:
        raise JobError(f"[{SECTION}] port and timeout must be numbers", EXIT_MAIL) from None
    password = setting("report.smtp.password", secret=True)
    password = None if password in (None, "") else str(password)
    redact.register(password)
    user = setting("report.smtp.user")
    ca = setting("report.smtp.ca_file")
    ca_file = None if not ca else Path(str(ca)).expanduser()
    if ca_file is not None and not ca_file.is_file():
        raise JobError(f"[{SECTION}] ca_file = {str(ca)[:200]!r}: no such file (the "
                       "certificates, PEM, that the server's is checked against)", EXIT_MAIL)
    return Smtp(str(host), port, security, None if not user else str(user), password,
                str(setting("report.smtp.sender") or user or Smtp.sender), timeout, ca_file)


def message(html: str, attachment: Path, subject: str, sender: str,
            recipients: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, sender, ", ".join(recipients)
    msg["Date"], msg["Message-ID"] = formatdate(localtime=False), make_msgid("desk-report")
    msg.set_content("The desk report is in the HTML part and attached as "
                    f"{attachment.name}.")
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(attachment.read_text(encoding="utf-8"), subtype="html",
                       filename=attachment.name)
    return msg


def send(smtp: Smtp, msg: EmailMessage, recipients: list[str]) -> None:
    """Send, or one line saying why not (never the password)."""
    where = f"{smtp.host}:{smtp.port}"
    try:
        context = smtp.tls()
        if smtp.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(smtp.host, smtp.port, timeout=smtp.timeout_s,
                                                    context=context)
        else:
            client = smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s)
        with client:
            if smtp.security == "starttls":
                client.starttls(context=context)
            if smtp.user:
                client.login(smtp.user, smtp.password or "")
            refused = client.send_message(msg, to_addrs=recipients)
    except smtplib.SMTPAuthenticationError as exc:
        raise JobError(f"mail not sent: {where} refused the login of {smtp.user!r} "
                       f"({exc.smtp_code}); check user and password under [{SECTION}]",
                       EXIT_MAIL) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise JobError(f"mail not sent: {where} refused every recipient "
                       f"({_refused(exc.recipients)})", EXIT_MAIL) from None
    except smtplib.SMTPNotSupportedError:
        raise JobError(f"mail not sent: {where} does not offer STARTTLS (or AUTH): set "
                       f"security under [{SECTION}]", EXIT_MAIL) from None
    except smtplib.SMTPException as exc:
        raise JobError(f"mail not sent: {where}: {_first_line(exc)}", EXIT_MAIL) from None
    except ssl.SSLCertVerificationError as exc:
        raise JobError(f"mail not sent: the certificate of {where} is not trusted "
                       f"({exc.verify_message}); for a private CA or a self-signed server, "
                       f"set ca_file under [{SECTION}]", EXIT_MAIL) from None
    except ssl.SSLError as exc:
        raise JobError(f"mail not sent: TLS with {where} failed ({exc.reason}); check "
                       f"security and port under [{SECTION}]", EXIT_MAIL) from None
    except (TimeoutError, OSError) as exc:
        raise JobError(f"mail not sent: cannot reach {where} "
                       f"({exc.strerror or type(exc).__name__})", EXIT_MAIL) from None
    if refused:
        raise JobError(f"mail sent, but {where} refused {_refused(refused)}", EXIT_MAIL)


def _refused(recipients: dict[str, tuple[int, bytes]]) -> str:
    """Each refused address with the server's code: 550 no such mailbox, 4xx try later."""
    return ", ".join(f"{addr} ({code})" for addr, (code, _) in sorted(recipients.items()))


def _first_line(exc: BaseException) -> str:
    return redact.redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:200]
