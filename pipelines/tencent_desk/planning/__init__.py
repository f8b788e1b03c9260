"""Planning the desk: forecast each interval's demand, staff it (Erlang C, Erlang A, chat
concurrency), and keep every plan made (``desk-sessions plan``)."""
