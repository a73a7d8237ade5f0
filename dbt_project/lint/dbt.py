"""Stand-ins for dbt's cross-database macros, for sqlfluff's jinja templater only.

sqlfluff lints the models without starting dbt (fast); these render the same shapes of SQL that
dbt-duckdb renders, so that the linter sees real SQL where a model calls `dbt.<macro>(...)`.
"""


def datediff(first_date, second_date, datepart):
    return f"date_diff('{datepart}', {first_date}, {second_date})"


def listagg(measure, delimiter_text="','", order_by_clause=None, limit_num=None):
    order = f" {order_by_clause}" if order_by_clause else ""
    return f"string_agg({measure}, {delimiter_text}{order})"


def date_trunc(datepart, date):
    return f"date_trunc('{datepart}', {date})"


def dateadd(datepart, interval, from_date_or_timestamp):
    return f"({from_date_or_timestamp} + interval ({interval}) {datepart})"


def current_timestamp():
    return "now()"


def safe_cast(field, type_):
    return f"try_cast({field} as {type_})"


def type_string():
    return "varchar"


def type_bigint():
    return "bigint"


def type_int():
    return "integer"


def type_timestamp():
    return "timestamp"
