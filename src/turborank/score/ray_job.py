"""``turborank score --ray``: the same scoring as a Ray Data job, one model per actor.

Ray reads the input (local paths, or cloud URIs where the filesystem package is installed), cuts it into
blocks of ``--batch-size`` rows (streaming: a small file would otherwise be one block, and one actor would
do all the work), scores them in an actor pool, and writes a directory of Parquet or JSONL files, whose
rows are not in input order (join back by an id column). Resume is Ray Data's own checkpointing, keyed
by ``--id-column``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ..errors import InputError
from ..ray_cluster import connect
from .command import RayOptions
from .inputs import Chunk, PairFile, check_pair_columns, null_problems
from .local import PROBLEMS_KEPT, ScoreJob, Summary
from .scoring import ScoreOptions, score_table, top_n_of_group

# Logical CPUs left to Ray Data's read and write tasks: with every CPU held by scoring actors the job
# waits forever for a CPU to read with (seen with two 1-CPU actors on a 2-CPU node).
IO_CPUS = 0.5
# A resumed job also runs Ray Data's checkpoint filter: an actor that holds one CPU.
CHECKPOINT_FILTER_CPUS = 1.0
JSON_DIGITS = 15  # pandas writes 10 significant digits unless told; 15 keeps every float32 score


@dataclass
class Tally:
    """Rows scored and skipped across actors (kept in a Ray actor, read back at the end)."""

    scored: int = 0
    skipped: int = 0
    bad_rows: list[str] = field(default_factory=list)
    # The bad row that stopped the job: Ray hands the driver its own exception, without ours as the cause.
    stopped_by: str | None = None
    workers: list = field(default_factory=list)  # the scoring actors' handles

    def enlist(self, worker) -> None:  # noqa: ANN001 - a Ray actor handle
        self.workers.append(worker)

    def add(self, scored: int, problems: list[str]) -> None:
        self.scored += scored
        self.skipped += len(problems)
        self.bad_rows += problems[: PROBLEMS_KEPT - len(self.bad_rows)]

    def stop(self, problem: str) -> None:
        self.stopped_by = self.stopped_by or problem

    def read(self) -> Tally:
        return self


class PairScorer:
    """A Ray Data actor: loads the model once, then scores each batch as the single-process run does."""

    def __init__(self, options: ScoreOptions, skip_bad_rows: bool, id_column: str | None, tally) -> None:  # noqa: ANN001
        import ray

        self.options = options
        self.skip_bad_rows = skip_bad_rows
        self.id_column = id_column
        self.tally = tally
        self.reranker = options.model.load()
        tally.enlist.remote(ray.get_runtime_context().current_actor)

    def __call__(self, batch: pa.Table) -> pa.Table:
        import ray

        columns = self.options.columns
        check_pair_columns(batch.schema, columns, "the input")
        ids = batch[self.id_column].to_pylist() if self.id_column else None
        chunk = Chunk(batch, 0, ids=ids)
        chunk.problems = null_problems(chunk, columns)
        table, problems = chunk.split_bad_rows()
        if problems and not self.skip_bad_rows:
            ray.get(self.tally.stop.remote(problems[0]))
            raise InputError(problems[0])
        scored = score_table(self.reranker, table, self.options)
        self.tally.add.remote(scored.num_rows, problems)
        return scored


def run_on_ray(job: ScoreJob, ray_options: RayOptions) -> Summary:
    """Score the file on Ray (the cluster at ``address``, or a local one) and write a directory of files.

    Raises:
        InputError: a bad row (without ``skip_bad_rows``), a CPU budget that leaves nothing for I/O, or an
            existing output that cannot be resumed.
    """
    import ray

    started_here = connect(ray_options.address)
    try:
        resuming = _configure(job, ray_options)
        _check_cpu_budget(ray_options, resuming)
        tally = ray.remote(Tally).options(num_cpus=0).remote()
        dataset = _scored(job, ray_options, tally)
        try:
            _write(dataset, job, resume=resuming)
        finally:
            result = ray.get(tally.read.remote())
            # Ray Data frees a failed job's actors only when its dataset is garbage-collected; until then
            # they hold their CPUs, and a rerun on the same Ray waits for them forever.
            for worker in result.workers:
                ray.kill(worker)
            if result.stopped_by:
                raise InputError(_bad_row_message(result.stopped_by, ray_options))
    finally:
        if started_here:
            ray.shutdown()
    return Summary(str(job.output), result.scored, result.skipped, bad_rows=result.bad_rows)


def _check_cpu_budget(options: RayOptions, resuming: bool) -> None:
    import ray

    total = ray.cluster_resources().get("CPU", 0)
    reserved = IO_CPUS + (CHECKPOINT_FILTER_CPUS if resuming else 0)
    uses = "reading and writing" + (" and the resume filter" if resuming else "")
    if options.concurrency * options.num_cpus > total - reserved:
        raise InputError(
            f"{options.concurrency} actors x {options.num_cpus:g} CPUs leave less than {reserved:g} of the "
            f"cluster's {total:g} CPUs for {uses}: "
            "lower --concurrency or --num-cpus (a fraction such as 0.5 is fine; torch threads are set "
            "with --threads)"
        )


def _configure(job: ScoreJob, options: RayOptions) -> bool:
    """Set Ray Data's options for this job; True when a rerun resumes (checkpointing by id is on)."""
    from ray.data import DataContext
    from ray.data.checkpoint import CheckpointConfig

    context = DataContext.get_current()
    context.enable_progress_bars = job.progress
    checkpoint = job.output.with_name(job.output.name + ".checkpoint")
    if options.id_column and job.top_n is None:
        resuming = checkpoint.exists()
        context.checkpoint_config = CheckpointConfig(
            id_column=options.id_column, checkpoint_path=str(checkpoint.resolve())
        )
        context.checkpoint_config.checkpoint_actor_pool_max_size = 1
    else:
        context.checkpoint_config = None
        resuming = False
    if job.output.exists() and not (resuming or job.overwrite):
        raise InputError(
            f"{job.output} exists: pass --overwrite to replace it (to resume an interrupted --ray run, "
            "pass the same --id-column as the first run)"
        )
    return resuming


def _read(source: PairFile):  # noqa: ANN202 - ray.data.Dataset, imported lazily
    import ray.data

    path, io = str(source.path.resolve()), {"num_cpus": IO_CPUS}
    if source.format == "parquet":
        return ray.data.read_parquet(path, **io)
    if source.format == "jsonl":
        return ray.data.read_json(path, **io)  # the Arrow reader: JSON lines, Arrow blocks
    import pyarrow.csv as pacsv

    delimiter = "\t" if source.format == "tsv" else ","
    return ray.data.read_csv(
        path,
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(strings_can_be_null=True, quoted_strings_can_be_null=False),
        **io,
    )


def _scored(job: ScoreJob, options: RayOptions, tally):  # noqa: ANN001, ANN202 - Ray handles and datasets
    from ray.data import ActorPoolStrategy

    dataset = _read(job.source).repartition(target_num_rows_per_block=job.chunk_rows)
    dataset = dataset.map_batches(
        PairScorer,
        fn_constructor_kwargs={
            "options": job.options,
            "skip_bad_rows": job.skip_bad_rows,
            "id_column": options.id_column,
            "tally": tally,
        },
        batch_size=job.chunk_rows,
        batch_format="pyarrow",
        compute=ActorPoolStrategy(size=options.concurrency),
        num_cpus=options.num_cpus,
        num_gpus=options.num_gpus,
    )
    if job.top_n is None:
        return dataset
    top_n = job.top_n
    return dataset.groupby(job.options.columns.query).map_groups(
        lambda group: top_n_of_group(group, top_n), batch_format="pyarrow"
    )


def _write(dataset, job: ScoreJob, resume: bool) -> None:  # noqa: ANN001 - ray.data.Dataset
    path, mode = str(job.output.resolve()), "append" if resume else "overwrite"
    if job.output_format == "parquet":
        dataset.write_parquet(path, mode=mode)
    else:
        dataset.write_json(path, mode=mode, double_precision=JSON_DIGITS, force_ascii=False)


def _bad_row_message(problem: str, options: RayOptions) -> str:
    resume = (
        "rows already written are kept, and a rerun with the same --id-column resumes after them"
        if options.id_column
        else "pass --id-column to make a rerun resume instead of starting over"
    )
    return f"{problem}: fix it, or pass --on-error skip to leave bad rows out; {resume}"


def read_directory(path: Path) -> pa.Table:
    """Every file a --ray run wrote, as one table (for tests and for users checking the result)."""
    import pyarrow.dataset as pads

    files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    kind = "parquet" if files and files[0].suffix == ".parquet" else "json"
    if kind == "json":
        return pa.Table.from_pylist([json.loads(line) for f in files for line in f.read_text().splitlines()])
    return pads.dataset(files, format=kind).to_table()
