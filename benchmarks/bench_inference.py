"""What the inference handlers cost on top of the model itself (run by hand, never in tests).

Trains a model on seeded synthetic churn data, loads it the way the server does
(``inference.model_fn``), then measures, as medians over many repeats:

* one JSON record through the handler chain ``input_fn -> predict_fn -> output_fn``;
* ``pipeline.predict_proba`` on a prepared one-row DataFrame, twice: the frame ``input_fn``
  builds (so the ratio is the handlers' own overhead) and the row as training reads it
  (``schema.coerce`` dtypes);
* batch throughput: 1,000 records per request through the chain, JSON and CSV.

The single-record timings are interleaved (chain, then each baseline, repeat), so a machine
whose load changes during the run slows all three alike. OpenMP runs one thread per call, as
in the serving container (model_code/entrypoints.py); ``--omp-threads 0`` keeps the library
default. The target is chain / predict_proba <= 1.5 for a single record.

    .venv/bin/python benchmarks/bench_inference.py [--model-type logistic] [--repeats 500]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable

from threadpoolctl import threadpool_limits

from model_code.contract import rules, schema, synthetic
from model_code.serving import inference
from model_code.training import artifact
from model_code.training.features import MODEL_TYPES
from model_code.training.train import fit_model

TARGET_RATIO = 1.5


def median_seconds(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each function, measured round-robin."""
    for fn in fns:
        fn()  # warm caches (compiled contract, sklearn's lazy imports)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, samples in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-type", default="gradient-boosting", choices=MODEL_TYPES)
    parser.add_argument("--rows", type=int, default=4000, help="training rows (default 4000)")
    parser.add_argument("--repeats", type=int, default=500, help="single-record repeats (default 500)")
    parser.add_argument("--batch", type=int, default=1000, help="records per batch request (default 1000)")
    parser.add_argument("--omp-threads", type=int, default=1, help="OpenMP threads (default 1; 0: default)")
    args = parser.parse_args(argv)
    if args.omp_threads:
        threadpool_limits(limits=args.omp_threads, user_api="openmp")

    contract = schema.load()
    raw = synthetic.generate(args.rows, seed=7)
    bundle = fit_model(rules.coerce(raw, contract), contract, model_type=args.model_type, random_state=0)
    with tempfile.TemporaryDirectory() as model_dir:
        model = inference.model_fn(str(artifact.save(model_dir, bundle)))

    sample = synthetic.generate(args.batch, seed=11)  # customers the model has not seen
    records = json.loads(sample.to_json(orient="records"))
    one = json.dumps(records[0]).encode()
    as_built = inference.input_fn(one, inference.JSON, model.schema)
    as_trained = rules.coerce(sample.head(1), contract)[contract.feature_names]

    def chain(body: bytes, content_type: str = inference.JSON) -> bytes:
        data = inference.input_fn(body, content_type, model.schema)
        return inference.output_fn(inference.predict_fn(data, model), inference.JSON)[0]

    def handlers_alone() -> bytes:
        inference.input_fn(one, inference.JSON, model.schema)
        return inference.output_fn([{"probability": 0.5, "prediction": 0}], inference.JSON)[0]

    t_chain, t_built, t_trained, t_handlers = median_seconds(
        [
            lambda: chain(one),
            lambda: model.pipeline.predict_proba(as_built),
            lambda: model.pipeline.predict_proba(as_trained),
            handlers_alone,
        ],
        args.repeats,
    )

    batch_json = json.dumps({"instances": records}).encode()
    batch_csv = sample[contract.feature_names].to_csv(index=False, header=False).encode()
    batch_repeats = max(5, args.repeats // 25)
    t_batch_json, t_batch_csv, t_batch_parse = median_seconds(
        [
            lambda: chain(batch_json),
            lambda: chain(batch_csv, inference.CSV),
            lambda: inference.input_fn(batch_json, inference.JSON, model.schema),
        ],
        batch_repeats,
    )

    ratio_built, ratio_trained = t_chain / t_built, t_chain / t_trained
    omp = args.omp_threads or "default"
    print(f"model: {args.model_type} on {args.rows} rows; OpenMP threads {omp}; medians of {args.repeats}")
    print(f"  handler chain, 1 JSON record            {t_chain * 1e3:8.3f} ms")
    print(f"  predict_proba, frame input_fn builds    {t_built * 1e3:8.3f} ms   ratio {ratio_built:.2f}")
    print(f"  predict_proba, row as training reads it {t_trained * 1e3:8.3f} ms   ratio {ratio_trained:.2f}")
    print(f"  input_fn + output_fn alone              {t_handlers * 1e3:8.3f} ms")
    print(f"batch of {args.batch} records, medians of {batch_repeats} repeats")
    print(f"  chain, JSON   {t_batch_json * 1e3:8.1f} ms   {args.batch / t_batch_json:10,.0f} records/s")
    print(f"  chain, CSV    {t_batch_csv * 1e3:8.1f} ms   {args.batch / t_batch_csv:10,.0f} records/s")
    print(f"  input_fn alone, JSON   {t_batch_parse * 1e3:8.1f} ms")
    verdict = "meets" if max(ratio_built, ratio_trained) <= TARGET_RATIO else "MISSES"
    print(f"single-record ratio {max(ratio_built, ratio_trained):.2f} {verdict} the target <= {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
