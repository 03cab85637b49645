"""The b12kg command line. Exit codes: 0 ok, 1 failed cases or invalid input, 2 usage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rdflib.plugins.sparql.parser import parseQuery

from .._version import __version__
from ..api import assess, explanation_store, graph_store, load_record
from ..cohort import assess_cohort, output_files
from ..cohort.commit import output_error
from ..engines.remote import Endpoint
from ..errors import B12kgError, InputError
from ..explain.text import render_text
from ..kb.qc import qc_graph, run_qc
from ..paths import EXAMPLES_DIR
from ..rdf.store import load_ntriples
from ..rdf.terms import DATA_GRAPH, INFERRED_GRAPH
from ..rules import load_rules
from ..spark import assess_files
from ..testing.cases import case_files, run_case
from .query import QUERY_MEMORY_MB, QUERY_SECONDS, run_bounded

FORMATS = ("text", "json", "turtle", "jsonld")


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False, default=str) + "\n")


def cmd_assess(args) -> int:
    status = 0
    outputs = []
    for i, path in enumerate(args.files):
        try:
            a = assess(path, profile=args.profile, engine=args.engine)
        except InputError as exc:
            status = 1
            if args.format == "json":
                outputs.append({"file": path, "error": exc.to_json()})
            else:
                print(f"{path}: refused: {exc}", file=sys.stderr)
            continue
        if args.format == "json":
            outputs.append({"file": path, **a.to_json()})
        elif args.format == "turtle":
            sys.stdout.write(a.to_turtle())
        elif args.format == "jsonld":
            sys.stdout.write(a.to_jsonld() + "\n")
        else:
            if i:
                sys.stdout.write("\n" + "=" * 100 + "\n")
            sys.stdout.write(render_text(a))
    if args.format == "json":
        _print_json(outputs[0] if len(outputs) == 1 else outputs)
    return status


def cmd_explain(args) -> int:
    try:
        a = assess(args.file, profile=args.profile, engine=args.engine)
    except InputError as exc:
        print(f"{args.file}: refused: {exc}", file=sys.stderr)
        return 1
    f = a.finding(args.finding)
    if f is None:
        print(f"{args.file}: no finding {args.finding} (findings: {', '.join(a.codes) or 'none'})", file=sys.stderr)
        return 1
    if args.format == "json":
        _print_json(f.to_json())
    else:
        print(f.explanation)
    return 0


def cmd_validate(args) -> int:
    status = 0
    for path in args.files:
        try:
            rec = load_record(path)
        except InputError as exc:
            status = 1
            print(f"{path}: INVALID")
            for issue in exc.issues:
                print(f"  - {issue}")
            continue
        print(f"{path}: valid ({len(rec.results)} results)")
        for n in rec.notes:
            print(f"  note: {n}")
    return status


def cmd_cases(args) -> int:
    files = case_files(args.folder)
    if not files:
        print(f"{args.folder}: no *.yaml case files", file=sys.stderr)
        return 1
    passed = failed = 0
    for p in files:
        r = run_case(p, engine=args.engine)
        mark = "PASS" if r.passed else "FAIL"
        print(f"{mark} {r.case_id}: {r.detail}")
        passed += r.passed
        failed += not r.passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def cmd_query(args) -> int:
    query = Path(args.query).read_text(encoding="utf-8")
    problem = _query_problem(query)
    if problem:
        print(f"{args.query}: refused: {problem}", file=sys.stderr)
        return 1
    if not args.data and not args.graph:
        print("query: give record files to assess, or --graph with the inferred.nq of a cohort run", file=sys.stderr)
        return 2
    store = graph_store(args.graph) if args.graph else None
    status = 0
    seen: dict[str, str] = {}       # patient IRI -> the file it came from
    for path in args.data:
        try:
            a = assess(path, profile=args.profile, engine=args.engine)
        except InputError as exc:
            print(f"{path}: refused: {exc}", file=sys.stderr)
            status = 1
            continue
        if a.patient_iri in seen:   # two patients of one id would be one node of the store
            print(f"{path}: refused: patient id {a.patient_id!r} is also the id of the patient of {seen[a.patient_iri]}: "
                  "in one store the two would merge into one patient", file=sys.stderr)
            status = 1
            continue
        seen[a.patient_iri] = str(path)
        if store is None:
            store = explanation_store(a.input_ntriples, a.inferred_ntriples)
        else:
            load_ntriples(store, a.input_ntriples, DATA_GRAPH)
            load_ntriples(store, a.inferred_ntriples, INFERRED_GRAPH)
    if store is None:
        return status or 1
    sys.stdout.flush()
    # the SPARQL 1.1 Query Results JSON or TSV format (SELECT, ASK), N-Triples (CONSTRUCT), in a
    # child process bounded in time and memory (cli/query.py)
    code, why = run_bounded(store, query, args.format, seconds=args.timeout, memory_mb=args.memory_mb)
    if why is not None:
        print(f"{args.query}: {why}", file=sys.stderr)
    return status or code


def cmd_assess_cohort(args) -> int:
    if args.spark:
        counts = assess_files(args.input, args.out, master=args.spark, profile=args.profile)
        print(f"assessed {counts['assessed']}, refused {counts['refused']} on Spark ({args.spark}); "
              f"outputs in {args.out}: patients/, findings/, rejects/ (Parquet)")
        return 0
    endpoint = None
    if args.endpoint:

        endpoint = Endpoint.from_options(query=args.endpoint, update=args.update_endpoint, store=args.store_endpoint,
                                         user=args.user, password_env=args.password_env)
    try:
        summary = assess_cohort(args.input, args.out, profile=args.profile, workers=args.workers,
                                chunk_size=args.chunk_size, write_graph=args.graph, resume=not args.restart,
                                progress=not args.quiet, endpoint=endpoint, engine=args.engine)
    except OSError as exc:      # a full disk, a read-only or missing folder: a message, not a traceback
        out = Path(args.out).resolve()
        name = Path(str(exc.filename)).resolve() if exc.filename else None
        if name is not None and out not in (name, *name.parents):
            raise B12kgError(f"{exc.filename}: cannot be read: {exc.strerror or exc}") from None
        raise output_error(Path(args.out), exc, "of this run") from None
    print(summary.text())
    print(f"outputs in {args.out}: {', '.join(output_files(args.graph))}")
    return 0 if summary.reconciles() else 1


def _query_problem(query: str) -> str | None:
    """Why a user's query must not run: not SPARQL, or asking the store to reach the network
    (SERVICE); b12kg never fetches anything."""
    try:
        tree = parseQuery(query)
    except Exception as exc:  # pyparsing errors carry line and column
        return f"not a SPARQL query: {exc}"

    def has_service(node) -> bool:
        if getattr(node, "name", None) == "ServiceGraphPattern":
            return True
        if isinstance(node, dict):
            return any(has_service(v) for v in node.values())
        if isinstance(node, (str, bytes)) or not hasattr(node, "__iter__"):
            return False
        return any(has_service(v) for v in node)  # lists and pyparsing ParseResults
    if has_service(tree):
        return "the query has a SERVICE clause: b12kg never queries other endpoints"
    return None


def cmd_demo(args) -> int:
    files = sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix in (".yaml", ".json"))
    print(f"b12kg {__version__}: assessing {len(files)} bundled example patients with the embedded store (pyoxigraph)\n")
    for i, p in enumerate(files):
        if i:
            print("=" * 100)
        print(f"[{p.name}]")
        sys.stdout.write(render_text(assess(p)))
    return 0


def cmd_qc(args) -> int:
    results = run_qc(qc_graph())
    bad = 0
    for name, rows in sorted(results.items()):
        print(f"{'FAIL' if rows else 'ok  '} {name}: {len(rows)} rows")
        for r in rows[:20]:
            print("     ", *r)
        bad += bool(rows)
    return 1 if bad else 0


def cmd_rules(args) -> int:
    print("order\tid\tfinding\tclosed-world\tclaims\tlabel")
    for r in load_rules():
        print(f"{r.order}\t{r.id}\t{r.finding or '-'}\t{'yes' if r.closed_world else 'no'}\t{' '.join(r.claims) or '-'}\t{r.label}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="b12kg", description="Knowledge-graph reasoner for vitamin B12 and ferritin read together.")
    p.add_argument("--version", action="version", version=f"b12kg {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def engine_opts(sp):
        sp.add_argument("--profile", choices=("default", "who-2020", "who-2011"), default=None,
                        help="cut-off profile (default: the record's own, else 'default')")
        sp.add_argument("--engine", choices=("oxigraph", "pyshacl", "swrl", "compiled"), default="oxigraph",
                        help="rule engine (default: oxigraph, in process)")

    sp = sub.add_parser("assess", help="assess patient records (case YAML/JSON, FHIR Bundle JSON, Turtle/JSON-LD)")
    sp.add_argument("files", nargs="+")
    sp.add_argument("--format", choices=FORMATS, default="text")
    engine_opts(sp)
    sp.set_defaults(func=cmd_assess)

    sp = sub.add_parser("explain", help="explain one finding of one record")
    sp.add_argument("file")
    sp.add_argument("--finding", required=True, help="finding code, e.g. IronDeficiencyMaskingRisk")
    sp.add_argument("--format", choices=("text", "json"), default="text")
    engine_opts(sp)
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser("query", help="run a SPARQL query over the knowledge base and assessed records or cohort results")
    sp.add_argument("query", help="a .rq file")
    sp.add_argument("data", nargs="*", help="record files to assess and load")
    sp.add_argument("--graph", action="append", default=[], metavar="NQ",
                    help="the inferred.nq of an assess-cohort --graph run (repeatable); loaded with the knowledge base")
    sp.add_argument("--format", choices=("tsv", "json"), default="tsv",
                    help="SELECT and ASK results in the SPARQL 1.1 TSV or JSON results format (CONSTRUCT: N-Triples)")
    sp.add_argument("--timeout", type=int, default=QUERY_SECONDS, help=f"CPU seconds the query may take (default {QUERY_SECONDS})")
    sp.add_argument("--memory-mb", type=int, default=QUERY_MEMORY_MB,
                    help=f"memory the query may use, in MB (default {QUERY_MEMORY_MB})")
    engine_opts(sp)
    sp.set_defaults(func=cmd_query)

    sp = sub.add_parser("validate", help="check records without reasoning")
    sp.add_argument("files", nargs="+")
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("cases", help="run a folder of acceptance cases (shared/cases format)")
    sp.add_argument("folder")
    sp.add_argument("--engine", choices=("oxigraph", "pyshacl", "swrl", "compiled"), default="oxigraph")
    sp.set_defaults(func=cmd_cases)

    sp = sub.add_parser("assess-cohort", help="assess a cohort (CSV, NDJSON of FHIR Bundles, or a folder) on all cores")
    sp.add_argument("input", help="a .csv (one row per patient), a .ndjson of FHIR Bundles, or a folder of records")
    sp.add_argument("--out", required=True, help="output folder")
    sp.add_argument("--profile", choices=("default", "who-2020", "who-2011"), default=None)
    sp.add_argument("--engine", choices=("compiled", "oxigraph"), default="compiled",
                    help="compiled: the rules compiled to vectorized array operations (fastest); "
                         "oxigraph: the rules as SPARQL updates on pyoxigraph (see README)")
    sp.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    sp.add_argument("--chunk-size", type=int, default=None, help="records per chunk")
    sp.add_argument("--graph", action="store_true", help="also write the input and inferred graphs as N-Quads")
    sp.add_argument("--restart", action="store_true", help="ignore finished parts of an interrupted run")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.add_argument("--endpoint", help="SPARQL 1.1 query endpoint of a remote store: run the rules inside it")
    sp.add_argument("--update-endpoint", help="SPARQL 1.1 update endpoint (default: the query endpoint)")
    sp.add_argument("--store-endpoint", help="Graph Store Protocol endpoint for loading data (default: INSERT DATA)")
    sp.add_argument("--user", help="user name for HTTP basic authentication")
    sp.add_argument("--password-env", help="name of the environment variable holding the password")
    sp.add_argument("--spark", metavar="MASTER",
                    help="run on Spark (local[2], spark://host:7077, yarn, ...): read the CSV or Parquet input and "
                         "write patients/, findings/ and rejects/ as Parquet through Spark (needs pyspark: the spark extra)")
    sp.set_defaults(func=cmd_assess_cohort)

    sp = sub.add_parser("demo", help="assess the bundled example patients")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("qc", help="run the ontology QC queries")
    sp.set_defaults(func=cmd_qc)

    sp = sub.add_parser("rules", help="list the rules")
    sp.set_defaults(func=cmd_rules)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except B12kgError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # pragma: no cover - e.g. piped into head
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
