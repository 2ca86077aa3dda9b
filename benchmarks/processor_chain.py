"""Scenario: the processor chain filter → redaction → probabilistic_sampler, reported as
CPU per span on top of the plain pipeline (decode alone), and per processor.

It runs in this process on the load generator's own trace requests (512-span batches with
HTTP and database attributes, client and peer IPv4 addresses that the redaction masks):
every request is decoded into a columnar batch, then handed through each processor's
``process`` (what ``consume`` does, without the event loop). CPU is process time, so a
noisy neighbour costs little; figures are still best read as ratios.

    python -m benchmarks.processor_chain            # about 10 s
    python -m benchmarks.processor_chain --quick
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

from benchmarks.payloads import make_templates
from otlp.batch import Batch
from otlp.decode import decode_protobuf
from otlp.telemetry import Telemetry

# what the chain is configured with, as a user would write it in YAML
CHAIN: dict[str, dict[str, Any]] = {
    "filter": {"traces": {"span": ['attributes["http.route"] == "/healthz"', "duration < 0"]}},
    "redaction": {
        "allow_all_keys": True,
        "blocked_key_patterns": [".*password.*", ".*token.*"],
        "blocked_value_sets": ["credit_card", "email", "ipv4"],
        "summary": "info",
    },
    # hash_seed (the default mode): the load generator's trace ids carry no W3C randomness
    "probabilistic_sampler": {"sampling_percentage": 25},
}


def build_chain() -> list[tuple[str, Any]]:
    from otlp.component import PROCESSOR, ComponentID, CreateSettings
    from otlp.registry import lookup

    telemetry = Telemetry()
    chain = []
    for name, config in CHAIN.items():
        factory = lookup(PROCESSOR, name)
        assert factory is not None, name
        settings = CreateSettings(ComponentID(name), PROCESSOR, telemetry, {"traces"})
        chain.append((name, factory.create(settings, factory.config_model.model_validate(config))))
    return chain


def _cpu(fn: Callable[[], Any], min_seconds: float) -> tuple[float, int]:
    fn()  # warm caches and lazy imports
    calls = 0
    began = time.process_time()
    while True:
        fn()
        calls += 1
        spent = time.process_time() - began
        if spent >= min_seconds:
            return spent, calls


def measure(batch: int = 512, min_seconds: float = 1.0) -> dict[str, Any]:
    """µs per span: decode alone, each processor alone, and decode + the whole chain."""
    templates = make_templates("traces", batch)
    bodies = [t.render(i + 1) for i, t in enumerate(templates)]
    spans = sum(t.items for t in templates)
    chain = build_chain()
    decoded = [decode_protobuf("traces", body) for body in bodies]

    def decode_all() -> None:
        for body in bodies:
            decode_protobuf("traces", body)

    def run_chain(batches: list[Batch]) -> list[Batch]:
        out = []
        for b in batches:
            for _, processor in chain:
                b = processor.process(b)
                if b.item_count() == 0:
                    break
            out.append(b)
        return out

    spent, calls = _cpu(decode_all, min_seconds)
    plain = spent / calls / spans * 1e6
    spent, calls = _cpu(lambda: run_chain([decode_protobuf("traces", b) for b in bodies]),
                        min_seconds)  # fmt: skip
    with_chain = spent / calls / spans * 1e6
    per_processor = {}
    inputs = decoded
    for name, processor in chain:

        def one(inputs: list[Batch] = inputs, processor: Any = processor) -> None:
            for b in inputs:
                processor.process(b)

        spent, calls = _cpu(one, min_seconds)
        per_processor[name] = round(spent / calls / spans * 1e6, 3)
        inputs = [processor.process(b) for b in inputs]
    kept = sum(b.item_count() for b in run_chain(decoded))
    return {
        "batch": batch,
        "spans_per_round": spans,
        "kept_fraction": round(kept / spans, 3),
        "decode_us_per_span": round(plain, 3),
        "decode_and_chain_us_per_span": round(with_chain, 3),
        "chain_us_per_span": round(with_chain - plain, 3),
        "chain_over_decode": round(with_chain / plain, 2),
        "per_processor_us_per_span": per_processor,
        "config": CHAIN,
    }


def to_markdown(result: dict[str, Any]) -> str:
    rows = [
        "## Processor chain: filter → redaction → probabilistic_sampler (traces)",
        "",
        f"In-process CPU per span on the load generator's {result['batch']}-span requests "
        f"(process time); {result['kept_fraction']:.0%} of spans kept by the chain.",
        "",
        "| step | CPU µs/span |",
        "|---|---:|",
        f"| decode (the plain pipeline's share) | {result['decode_us_per_span']} |",
    ]
    for name, value in result["per_processor_us_per_span"].items():
        rows.append(f"| {name} | {value} |")
    rows += [
        f"| **chain on top of decode** | **{result['chain_us_per_span']}** |",
        f"| decode + chain (ratio to decode) | {result['decode_and_chain_us_per_span']} "
        f"({result['chain_over_decode']}x) |",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    result = measure(min_seconds=0.3 if args.quick else 1.5)
    print(json.dumps(result, indent=2) if args.json else to_markdown(result))


if __name__ == "__main__":
    main()
