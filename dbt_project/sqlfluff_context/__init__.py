"""dbt's Jinja context, stood in for sqlfluff: the models template without dbt or a warehouse (`execute` is
False, as in dbt's parse), and var() gives dbt_project.yml's defaults."""

from pathlib import Path

import yaml

_PROJECT = Path(__file__).resolve().parents[1] / "dbt_project.yml"
_VARS = yaml.safe_load(_PROJECT.read_text()).get("vars", {})
execute = False


def var(name, default=None):
    return _VARS.get(name, default)


def env_var(name, default=""):
    return default


def ref(name):
    return name


def source(source_name, table_name):
    return f"{source_name}.{table_name}"


def config(**kwargs):
    return ""


class exceptions:  # noqa: N801 - dbt's name
    @staticmethod
    def raise_compiler_error(message):
        raise RuntimeError(message)


class adapter:  # noqa: N801 - dbt's name
    @staticmethod
    def quote(name):
        return '"' + name + '"'

    @staticmethod
    def get_columns_in_relation(relation):
        return []
