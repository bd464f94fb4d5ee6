"""The flow engine: compiles validated flow specs into operator instances and runs them on a query state,
recording a trace event per step (name, wall time, what it added).

Steps: operators (``state -> state``), ``parallel`` (branches on the same input, then a merge operator),
``route`` (a router picks a case), ``loop`` (a bounded body, stopped early by a judge).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence, Union

from rag.config import LoopStep, OpStep, ParallelStep, RouteStep, Step
from rag.errors import ConfigError, RagloomError
from rag.operators import JudgeOperator, MergeOperator, RouterOperator, RunContext, StepOperator
from rag.registry import STEP_KINDS, create
from rag.state import QueryState, TraceEvent
from rag.types import Hit


class FlowError(RagloomError):
    """An operator failed while running a flow; names the step path and operator."""


@dataclass(frozen=True)
class OpNode:
    path: str
    operator: StepOperator


@dataclass(frozen=True)
class ParallelNode:
    path: str
    branches: tuple[tuple["Node", ...], ...]
    merge: MergeOperator


@dataclass(frozen=True)
class RouteNode:
    path: str
    router: RouterOperator
    cases: dict[str, tuple["Node", ...]]
    default: tuple["Node", ...] | None


@dataclass(frozen=True)
class LoopNode:
    path: str
    max_iters: int
    body: tuple["Node", ...]
    judge: JudgeOperator | None
    accumulate: bool


Node = Union[OpNode, ParallelNode, RouteNode, LoopNode]


def compile_flow(steps: Sequence[Step]) -> tuple[Node, ...]:
    """Instantiate every operator of a validated flow once (operators are reused across queries)."""
    return tuple(_compile(step) for step in steps)


def _instance(spec: OpStep, kinds):
    return create(spec.op, dict(spec.params), kinds, spec.path)


def _compile(step: Step) -> Node:
    if isinstance(step, OpStep):
        return OpNode(step.path, _instance(step, STEP_KINDS))
    if isinstance(step, ParallelStep):
        branches = tuple(compile_flow(b) for b in step.branches)
        return ParallelNode(step.path, branches, _instance(step.merge, "merge"))
    if isinstance(step, RouteStep):
        cases = {label: compile_flow(steps) for label, steps in step.cases.items()}
        default = compile_flow(step.default) if step.default is not None else None
        return RouteNode(step.path, _instance(step.by, "router"), cases, default)
    if isinstance(step, LoopStep):
        judge = _instance(step.until, "judge") if step.until is not None else None
        return LoopNode(step.path, step.max_iters, compile_flow(step.body), judge, step.accumulate)
    raise TypeError(f"not a flow step: {step!r}")


def run_flow(nodes: Sequence[Node], state: QueryState, ctx: RunContext) -> tuple[QueryState, list[TraceEvent]]:
    """Run ``nodes`` in order; return the final state and one trace event per executed step."""
    trace: list[TraceEvent] = []
    for node in nodes:
        state, event = _run(node, state, ctx)
        trace.append(event)
    return state, trace


def _run(node: Node, state: QueryState, ctx: RunContext) -> tuple[QueryState, TraceEvent]:
    started = time.perf_counter()
    if isinstance(node, OpNode):
        new = _call(node.path, node.operator, lambda: node.operator(state, ctx))
        if not isinstance(new, QueryState):
            raise FlowError(f"{node.path}: op {node.operator.name!r} returned {type(new).__name__}, not a QueryState")
        return new, _event(node.path, node.operator.name, node.operator.kind, started, state, new)

    if isinstance(node, ParallelNode):
        outputs, children = [], []
        for i, branch in enumerate(node.branches):
            out, events = run_flow(branch, state, ctx)
            outputs.append(out)
            children.append(TraceEvent(f"{node.path}.parallel[{i}]", "branch", "branch",
                                       sum(e.seconds for e in events), _summary(state, out), events))
        merge_started = time.perf_counter()
        merged = _call(node.path, node.merge, lambda: node.merge.merge(outputs, state, ctx))
        merge_event = _event(f"{node.path}.merge", node.merge.name, "merge", merge_started, state, merged)
        event = _event(node.path, "parallel", "parallel", started, state, merged)
        event.children = children + [merge_event]
        return merged, event

    if isinstance(node, RouteNode):
        label = _call(node.path, node.router, lambda: node.router.route(state, ctx))
        if label in node.cases:
            chosen = node.cases[label]
        elif node.default is not None:
            chosen = node.default
        else:
            raise FlowError(f"{node.path}: router {node.router.name!r} returned {label!r}, which has no case and "
                            "the route has no default")
        routed = state.evolve(labels={**state.labels, node.router.name: label})
        new, events = run_flow(chosen, routed, ctx)
        event = _event(node.path, "route", "route", started, state, new)
        event.summary["label"] = label
        event.summary["case"] = label if label in node.cases else "default"
        event.children = events
        return new, event

    if isinstance(node, LoopNode):
        children: list[TraceEvent] = []
        current = state
        stopped_by = "max_iters"
        for iteration in range(node.max_iters):
            before = current
            out, events = run_flow(node.body, current.evolve(iteration=iteration), ctx)
            if node.accumulate:
                out = out.evolve(hits=accumulate_hits(before.hits, out.hits))
            children.append(TraceEvent(f"{node.path}.body#{iteration}", "iteration", "iteration",
                                       sum(e.seconds for e in events), _summary(before, out), events))
            current = out
            if node.judge is not None and _call(node.path, node.judge, lambda: node.judge.judge(current, ctx)):
                stopped_by = node.judge.name
                break
        current = current.evolve(iteration=state.iteration)
        event = _event(node.path, "loop", "loop", started, state, current)
        event.summary.update(iterations=len(children), stopped_by=stopped_by)
        event.children = children
        return current, event

    raise TypeError(f"not a flow node: {node!r}")


def accumulate_hits(previous: Sequence[Hit], new: Sequence[Hit]) -> tuple[Hit, ...]:
    """Hits of earlier iterations first (their order kept), then new chunks in their order."""
    seen = {h.chunk.id for h in previous}
    return tuple(previous) + tuple(h for h in new if h.chunk.id not in seen)


def _call(path: str, operator, thunk):
    try:
        return thunk()
    except ConfigError as exc:
        if exc.path.startswith(path):
            raise
        raise ConfigError(exc.message, f"{path}.{exc.path}" if exc.path else path, exc.source, exc.line) from exc
    except FlowError:
        raise
    except RagloomError as exc:
        raise type(exc)(f"{path} ({operator.name}): {exc}") from exc
    except Exception as exc:
        raise FlowError(f"{path}: op {operator.name!r} failed: {type(exc).__name__}: {exc}") from exc


def _summary(before: QueryState, after: QueryState) -> dict:
    summary: dict = {}
    if after.hits is not before.hits:
        summary["hits"] = len(after.hits)
        summary["top"] = [h.chunk.id for h in after.hits[:5]]
    if after.context is not before.context and after.context is not None:
        summary["context_chunks"] = len(after.context)
    if after.search_query != before.search_query:
        summary["search_query"] = after.search_query
    if after.variants != before.variants:
        summary["variants"] = list(after.variants)
    if after.answer is not before.answer and after.answer is not None:
        summary["answer_chars"] = len(after.answer.text)
        summary["citations"] = len(after.answer.citations)
    added_notes = {k: v for k, v in after.notes.items() if before.notes.get(k) is not v}
    if added_notes:
        summary["notes"] = added_notes
    return summary


def _event(path: str, name: str, kind: str, started: float, before: QueryState, after: QueryState) -> TraceEvent:
    return TraceEvent(path, name, kind, time.perf_counter() - started, _summary(before, after))
