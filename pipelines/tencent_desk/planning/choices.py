"""The choices a plan offers, named once: the command line offers them without loading the
maths (pandas, NumPy), which every other command would then pay for."""

INTERVALS = (15, 30, 60)  # minutes
METHODS = ("profile", "naive")  # how arrivals are forecast (planning/forecast.py)
PER = ("day", "interval")  # where the service target applies: --target-per
