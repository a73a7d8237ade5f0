"""Stand-in for dbt's `adapter` object, for sqlfluff's jinja templater only.

`adapter.dispatch('name', 'package')` returns the adapter-specific implementation of a project
macro in dbt; here it returns a function that renders a plain call of that name, `name(args)`,
which is valid SQL for the linter to check the model around it.
"""


def dispatch(macro_name, macro_namespace=None):
    def render(*args, **kwargs):
        values = [str(a) for a in args] + [str(v) for v in kwargs.values()]
        return f"{macro_name}({', '.join(values)})"

    return render
