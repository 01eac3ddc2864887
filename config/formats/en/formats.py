"""One date format across the suite ("6 Dec 2026, 14:05"), shown in the user's
timezone (apps.common.timezones); Django's en locale would say "Dec. 6, 2026, 2:05 p.m."."""
DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y, H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y, H:i"
TIME_FORMAT = "H:i"
MONTH_DAY_FORMAT = "j M"
YEAR_MONTH_FORMAT = "M Y"
FIRST_DAY_OF_WEEK = 1
