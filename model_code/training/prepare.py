"""EngineerFeatures: choose the rows a training run learns from, and split them train/test.

In the training pipeline the rows come from the feature group's offline store
(``--feature-group``): every version of every record, read where ``DescribeFeatureGroup``
says the store is, after waiting (at most ``--wait-seconds``, the pipeline's
``OfflineStoreWaitSeconds``) until the records the ingestion runs reported are visible there
(:mod:`model_code.training.offline_store`). The training set is built point in time: per
record identifier the latest version whose event time falls in the strategy's window, deleted
records left out. Rows are then typed by the data contract; a row that breaks it (the contract
changed since ingestion) is not trained on, and counted. ``--input`` reads CSV/Parquet files
instead (a step run by hand on a folder).

Two strategies decide which validated rows a run uses (``--strategy``):

* ``new-data-only``: the records newer than the champion's data, i.e. whose event time is
  after the ``DataEnd`` the current Approved model package of the group carries. With no
  champion (or one without ``DataEnd``), the last ``--window-days`` days.
* ``combined``: every record of the last ``--window-days`` days, old and new together.

The window ends at the newest event time in the data, not at the wall clock, so the same
data always gives the same rows; it is the half-open interval ``(newest - days, newest]``.
A schema without an event time has no window: every row is used.

The chosen rows are sorted (event time, then id), so the file layout does not matter, and
split with a seeded, stratified shuffle. As a SageMaker processing step it writes::

    /opt/ml/processing/output/train/train.csv, schema.yaml   (--train-dir; the training channel)
    /opt/ml/processing/output/test/test.csv                  (--test-dir)
    /opt/ml/processing/output/window/data_window.json        (--window-dir; a property file)

``data_window.json`` holds ``strategy``, ``rows``, ``rows_train``, ``rows_test``,
``data_start``, ``data_end`` (ISO-8601 UTC; the model is registered with them) and how the
window was chosen; read from the offline store, also ``source`` (``offline-store``), its
``offline_store_uri``, ``offline_rows`` (versions read), ``records_reported`` (by ingestion),
``records_waited_for`` (reported but not yet visible when the step started) and
``seconds_waited``. Too few rows, or a single class, fail the step with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from model_code import container, register_info
from model_code.contract import rules
from model_code.contract.schema import Schema, SchemaError, find_file, load
from model_code.training import offline_store

PROCESSING = Path("/opt/ml/processing")
TRAINING_STRATEGIES = ("new-data-only", "combined")
WINDOW_FILE = "data_window.json"
DEFAULT_WINDOW_DAYS = 90
DEFAULT_TEST_SHARE = 0.2
# Below this a model (and its AUC on the test split) says little; tiny runs can lower it.
DEFAULT_MIN_ROWS = 100


class PrepareFailed(container.StepFailed):
    """The data cannot make a training set (no new rows, too few, one class)."""


def format_time(value: pd.Timestamp | None) -> str | None:
    """ISO-8601 UTC with a ``Z``, microseconds only when present: ``2026-01-01T23:59:59Z``."""
    if value is None or pd.isna(value):
        return None
    value = pd.Timestamp(value).tz_convert("UTC")
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if value.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None, where: str) -> pd.Timestamp | None:
    """An ISO-8601 time as a UTC timestamp (naive times are read as UTC); None stays None."""
    if text is None or str(text).strip() == "":
        return None
    try:
        value = pd.Timestamp(str(text).strip())
    except ValueError:
        raise PrepareFailed(f"{where}: {text!r} is not an ISO-8601 time") from None
    return value.tz_localize("UTC") if value.tzinfo is None else value.tz_convert("UTC")


@dataclass(frozen=True)
class Window:
    """Which event times a run trains on: those after ``since`` (all, when it is None)."""

    strategy: str
    window_days: int
    newest: pd.Timestamp | None
    since: pd.Timestamp | None
    champion_data_end: pd.Timestamp | None
    reason: str


def choose_window(
    newest: pd.Timestamp | None,
    *,
    strategy: str,
    window_days: int,
    champion_data_end: pd.Timestamp | None = None,
) -> Window:
    """The window for a strategy, given the newest event time in the data.

    Parameters
    ----------
    newest : Timestamp or None
        The newest event time in the data; None when the schema has no event time.
    strategy : {"new-data-only", "combined"}
    window_days : int
        Length of the look-back window, in days, ending at ``newest``.
    champion_data_end : Timestamp or None
        The champion's ``DataEnd``; only ``new-data-only`` uses it.
    """
    if strategy not in TRAINING_STRATEGIES:
        raise ValueError(f"strategy: {strategy!r} is not one of {' | '.join(TRAINING_STRATEGIES)}")
    if window_days < 1:
        raise ValueError(f"window_days: expected an integer >= 1, got {window_days}")
    if newest is None:
        return Window(strategy, window_days, None, None, champion_data_end, "no event time: every row")
    if strategy == "new-data-only" and champion_data_end is not None:
        return Window(
            strategy,
            window_days,
            newest,
            champion_data_end,
            champion_data_end,
            f"records after the champion's DataEnd {format_time(champion_data_end)}",
        )
    why = " (no champion DataEnd)" if strategy == "new-data-only" else ""
    return Window(
        strategy,
        window_days,
        newest,
        newest - pd.Timedelta(days=window_days),
        champion_data_end,
        f"the last {window_days} days up to the newest record {format_time(newest)}{why}",
    )


def select_rows(frame: pd.DataFrame, schema: Schema, window: Window) -> pd.DataFrame:
    """The labelled rows inside ``window``, sorted by event time and id.

    Raises
    ------
    PrepareFailed
        When no row is left, naming the window.
    """
    target = schema.target.column
    rows = frame[frame[target].notna()]
    if window.since is not None:
        rows = rows[rows[schema.event_time] > window.since]
    order = [c for c in (schema.event_time, schema.entity_id) if c and c in rows.columns]
    rows = rows.sort_values(order, kind="stable").reset_index(drop=True) if order else rows
    if rows.empty:
        raise PrepareFailed(
            f"no labelled rows to train on with strategy {window.strategy}: {window.reason}; "
            f"the newest record is {format_time(window.newest)}"
        )
    return rows


def check_trainable(rows: pd.DataFrame, schema: Schema, *, min_rows: int, test_share: float) -> None:
    """Fail unless ``rows`` can give a stratified split with both classes on each side."""
    if not 0.0 < test_share < 1.0:
        raise PrepareFailed(f"test share: expected a number between 0 and 1, got {test_share}")
    if len(rows) < min_rows:
        raise PrepareFailed(f"only {len(rows)} rows to train on, fewer than the minimum {min_rows}")
    positive = schema.is_positive(rows[schema.target.column])
    counts = {"positive": int(positive.sum()), "negative": int((~positive).sum())}
    target = schema.target.column
    if min(counts.values()) == 0:
        only = "positive" if counts["positive"] else "negative"
        raise PrepareFailed(
            f"{target}: all {len(rows)} rows hold the {only} class; a model needs both classes"
        )
    # A stratified split puts at least one row of each class on each side.
    for label, n in counts.items():
        if n < 2:
            raise PrepareFailed(f"{target}: only {n} {label} row(s); the train and test splits need one each")


def split(
    rows: pd.DataFrame, schema: Schema, *, test_share: float, random_state: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded split stratified on the target: class shares match on both sides."""
    from sklearn.model_selection import train_test_split

    labels = schema.is_positive(rows[schema.target.column]).to_numpy(dtype=int)
    # Each side needs a row of each class, whatever share was asked for.
    n_test = min(max(round(test_share * len(rows)), 2), len(rows) - 2)
    train, test = train_test_split(rows, test_size=n_test, random_state=random_state, stratify=labels)
    return train.sort_index(), test.sort_index()


def prepare(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    strategy: str,
    window_days: int = DEFAULT_WINDOW_DAYS,
    champion_data_end: pd.Timestamp | None = None,
    test_share: float = DEFAULT_TEST_SHARE,
    random_state: int = 0,
    min_rows: int = DEFAULT_MIN_ROWS,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Choose the rows for ``strategy`` and split them; returns train, test and the report."""
    times = frame[schema.event_time] if schema.event_time else None
    newest = times.max() if times is not None and times.notna().any() else None
    window = choose_window(
        newest, strategy=strategy, window_days=window_days, champion_data_end=champion_data_end
    )
    rows = select_rows(frame, schema, window)
    check_trainable(rows, schema, min_rows=min_rows, test_share=test_share)
    train, test = split(rows, schema, test_share=test_share, random_state=random_state)
    span = rows[schema.event_time] if schema.event_time else None
    target = schema.target.column
    report = {
        "strategy": strategy,
        "window_days": window_days,
        "window": window.reason,
        "event_time": schema.event_time,
        "newest_event_time": format_time(window.newest),
        "since": format_time(window.since),
        "champion_data_end": format_time(champion_data_end),
        "data_start": format_time(span.min()) if span is not None else None,
        "data_end": format_time(span.max()) if span is not None else None,
        "rows_in": len(frame),
        "rows_unlabelled": int(frame[target].isna().sum()),
        "rows": len(rows),
        "rows_train": len(train),
        "rows_test": len(test),
        "positive_rate_train": float(schema.is_positive(train[target]).mean()),
        "positive_rate_test": float(schema.is_positive(test[target]).mean()),
        "test_share": test_share,
        "random_state": random_state,
    }
    return train, test, report


def from_offline_store(
    schema: Schema,
    store: offline_store.OfflineStore,
    waited: offline_store.Waited,
    *,
    strategy: str,
    window_days: int,
    champion_data_end: pd.Timestamp | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The point-in-time rows of the strategy's window, typed by the contract, and what was read.

    Rows that break the contract are left out and counted (``rows_rejected``); the frame's
    other columns (bookkeeping, an event time the schema does not name) are dropped.
    """
    rows = waited.rows
    if rows.empty:
        raise PrepareFailed(f"the offline store of {store.feature_group} ({store.uri}) holds no records yet")
    ids, times = store.record_id, store.event_time
    latest = offline_store.point_in_time(rows, record_id=ids, event_time=times)
    newest = None
    if schema.event_time and not latest.empty:
        newest = offline_store.offline_times(latest[times]).max()
    window = choose_window(
        newest, strategy=strategy, window_days=window_days, champion_data_end=champion_data_end
    )
    chosen = offline_store.point_in_time(
        rows, record_id=ids, event_time=times, start=window.since, end=newest
    )
    typed, checked = rules.check_frame(chosen.reset_index(drop=True), schema)
    bad = checked.reasons.notna().any(axis=1).to_numpy() if len(checked.reasons.columns) else None
    kept = typed if bad is None else typed[~bad].reset_index(drop=True)
    read = {
        "source": "offline-store",
        "feature_group": store.feature_group,
        "offline_store_uri": store.uri,
        "offline_rows": len(rows),
        "records_point_in_time": len(chosen),
        "rows_rejected": 0 if bad is None else int(bad.sum()),
        "records_reported": waited.records_reported,
        "records_visible_at_start": waited.records_visible_at_start,
        "records_waited_for": waited.records_waited_for,
        "seconds_waited": waited.seconds_waited,
    }
    return kept, read


def read_feature_group(
    feature_group: str,
    reports_uri: str | None,
    *,
    wait_seconds: float,
    poll_seconds: float,
    sagemaker: Any = None,
    s3: Any = None,
    sleep: Any = None,
) -> tuple[offline_store.OfflineStore, offline_store.Waited]:
    """The feature group's offline store, once the records ingestion reported are visible."""
    import boto3

    sagemaker = sagemaker or boto3.client("sagemaker")
    s3 = s3 or boto3.client("s3")
    store = offline_store.OfflineStore.describe(sagemaker, feature_group)
    reported = 0
    if reports_uri:
        reported, _ = offline_store.reported_records(s3, reports_uri, feature_group, store.created)
    try:
        waited = offline_store.wait_for_records(
            lambda: offline_store.read_offline_store(s3, store.uri),
            reported,
            wait_seconds=wait_seconds,
            poll_seconds=poll_seconds,
            sleep=sleep,
        )
    except offline_store.WaitExceeded as exc:
        raise PrepareFailed(str(exc)) from None
    return store, waited


def champion_data_end(
    group: str | None, override: str | None = None
) -> tuple[pd.Timestamp | None, str | None]:
    """The champion's DataEnd and where it came from: ``override``, else the registry."""
    if override:
        return parse_time(override, "--champion-data-end"), "--champion-data-end"
    if not group:
        return None, None
    package = register_info.latest_approved(group)
    if package is None:
        return None, None
    arn = package["ModelPackageArn"]
    return parse_time(register_info.data_end(package), f"{arn} DataEnd"), arn


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """A CSV the training channel reads back, event times as ISO-8601 UTC."""
    path.parent.mkdir(parents=True, exist_ok=True)
    out = frame.copy()
    for column in out.select_dtypes("datetimetz").columns:
        out[column] = out[column].map(format_time)
    out.to_csv(path, index=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_code.training.prepare",
        description="Choose the training rows by strategy and split them train/test (processing contract).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--input",
        type=Path,
        default=PROCESSING / "input/accepted",
        help="CSV/Parquet files (without --feature-group)",
    )
    add("--feature-group", help="read the training rows from this feature group's offline store")
    add("--ingestion-reports", help="s3:// prefix of the ingestion runs' reports (whose records to wait for)")
    add("--wait-seconds", type=float, default=1200, help="longest wait for the reported records (seconds)")
    add(
        "--poll-seconds",
        type=float,
        default=60,
        help="seconds between reads of the offline store while waiting",
    )
    add("--schema", type=Path, default=PROCESSING / "input/schema", help="schema YAML or a folder with one")
    add("--train-dir", type=Path, default=PROCESSING / "output/train", help="for train.csv and schema.yaml")
    add("--test-dir", type=Path, default=PROCESSING / "output/test", help="for test.csv")
    add("--window-dir", type=Path, default=PROCESSING / "output/window", help=f"for {WINDOW_FILE}")
    add("--strategy", default="new-data-only", choices=TRAINING_STRATEGIES)
    add("--window-days", type=int, default=DEFAULT_WINDOW_DAYS, help="look-back window in days")
    add("--test-share", type=float, default=DEFAULT_TEST_SHARE, help="share of rows held out for testing")
    add("--random-state", type=int, default=0, help="seed of the split")
    add("--min-rows", type=int, default=DEFAULT_MIN_ROWS, help="fewest rows a run may train on")
    add("--model-package-group", help="where to look up the champion's DataEnd (new-data-only)")
    add("--champion-data-end", help="the champion's DataEnd (ISO-8601); skips the registry lookup")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the EngineerFeatures step; returns the exit status (1 with the reason in /opt/ml/output/message)."""
    # Imported here: the pipeline builder imports this module for its constants, and
    # training code would load scikit-learn into every definition build.
    from model_code.training.train import read_channel

    args = build_parser().parse_args(argv)
    try:
        schema_path = find_file(args.schema)
        schema = load(schema_path)
        data_end, source = None, None
        if args.strategy == "new-data-only":
            data_end, source = champion_data_end(args.model_package_group, args.champion_data_end)
        read: dict[str, Any] = {}
        if args.feature_group:
            store, waited = read_feature_group(
                args.feature_group,
                args.ingestion_reports,
                wait_seconds=args.wait_seconds,
                poll_seconds=args.poll_seconds,
            )
            frame, read = from_offline_store(
                schema,
                store,
                waited,
                strategy=args.strategy,
                window_days=args.window_days,
                champion_data_end=data_end,
            )
        else:
            frame = read_channel(args.input, schema)
        train, test, report = prepare(
            frame,
            schema,
            strategy=args.strategy,
            window_days=args.window_days,
            champion_data_end=data_end,
            test_share=args.test_share,
            random_state=args.random_state,
            min_rows=args.min_rows,
        )
    except (SchemaError, *container.STEP_ERRORS) as exc:
        return container.fail(f"prepare: {exc}", job=container.PROCESSING)
    report["champion"] = source
    report["input_files"] = frame.attrs.get("files", [])
    report.update(read)
    write_csv(train, args.train_dir / "train.csv")
    # The training channel carries its contract: model_code.training.train reads schema.yaml there.
    (args.train_dir / "schema.yaml").write_text(yaml.safe_dump(schema.to_dict(), sort_keys=False))
    write_csv(test, args.test_dir / "test.csv")
    args.window_dir.mkdir(parents=True, exist_ok=True)
    (args.window_dir / WINDOW_FILE).write_text(json.dumps(report, indent=2) + "\n")
    if read:
        print(
            f"offline store of {read['feature_group']}: {read['offline_rows']} rows read, "
            f"{read['records_point_in_time']} records point in time; waited {read['seconds_waited']:g} s "
            f"for {read['records_waited_for']} of the {read['records_reported']} records ingestion reported"
        )
    print(
        f"{args.strategy}: {report['window']}; {report['rows']} of {report['rows_in']} rows "
        f"({report['data_start']} .. {report['data_end']}), {report['rows_train']} train / "
        f"{report['rows_test']} test"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
