"""OTTL (the OpenTelemetry Transformation Language), the subset our processors use, parsed
once at config load and compiled to vectorised pyarrow.compute functions over a Batch.

    cond = Condition(['attributes["http.status_code"] >= 500'], "span")
    mask = cond.evaluate(Rows(batch, "span"))          # numpy bool per span

    stmt = Statement('set(attributes["env"], "prod") where name == "GET"', "span")
    rows = Rows(batch, "span"); stmt.execute(rows); batch = rows.result()

Building blocks other processors reuse: ``Condition`` for ``ottl_condition`` policies (a mask
per span, to be reduced per trace), ``otlp.ottl.attrs`` (``lookup``, ``upsert``,
``filter_keys``, ``map_items``, ``scatter_values`` over ``list<ATTRIBUTE>`` columns) for
attribute rewriting such as redaction, ``Rows`` for each context's table and its links to
span/metric/scope/resource rows (``Rows.result()`` writes edits back into a Batch).

Syntax and type errors raise ``OttlError`` (a ValueError, so pydantic validators turn it into
a config error) naming the statement and the column.
"""

from otlp.ottl.compiler import Condition, OttlRuntimeError, Statement
from otlp.ottl.contexts import CONTEXTS, SIGNAL_CONTEXTS, Rows
from otlp.ottl.parser import OttlError

__all__ = [
    "CONTEXTS",
    "SIGNAL_CONTEXTS",
    "Condition",
    "OttlError",
    "OttlRuntimeError",
    "Rows",
    "Statement",
]
