#!/bin/sh
# run_eval.sh — the quality table of docs/eval.md: `kfchat eval` on every document of the corpus
# (scripts/eval_corpus.sh) for the policies {window, sink, h2o, keyformer-static, keyformer} x
# budgets {20, 30, 50, 70}% of N, then one markdown table of the means over documents.
#
# Document by document: first `full` (its NLLs and continuation go to OUT_DIR/ref via --ref-dir),
# then one `kfchat eval --json` job per (policy, budget) that reuses them, JOBS at a time.  A job
# whose JSON already exists is not run again, so an interrupted run resumes; the table is made
# from the documents that have every (policy, budget).  The numbers do not depend on JOBS or
# THREADS.
#
# usage: scripts/run_eval.sh [-j JOBS] [-t THREADS] [-n TOKENS] [-g GREEDY] [-c CHUNK]
#                            [-p "POLICY ..."] [-b "X%,..."] [-M] CORPUS_DIR OUT_DIR
#   -M: only merge the results already in OUT_DIR (after a run was stopped)
#   KFCHAT=path/to/kfchat (default ./kfchat), KF_MODEL=model.gguf (default: the installed one)
# Writes OUT_DIR/json/*.json (raw), OUT_DIR/log/*.log (progress), OUT_DIR/results.json (merged)
# and OUT_DIR/table.md, which it also prints.
set -eu

JOBS=1 THREADS=1 TOKENS=3000 GREEDY=256 CHUNK=16 MERGE_ONLY=0
POLICIES="window sink h2o keyformer-static keyformer"
BUDGETS="20%,30%,50%,70%"
while getopts j:t:n:g:c:p:b:M opt; do
    case $opt in
    j) JOBS=$OPTARG ;;
    t) THREADS=$OPTARG ;;
    n) TOKENS=$OPTARG ;;
    g) GREEDY=$OPTARG ;;
    c) CHUNK=$OPTARG ;;
    p) POLICIES=$OPTARG ;;
    b) BUDGETS=$OPTARG ;;
    M) MERGE_ONLY=1 ;;
    *) echo "usage: $0 [-j JOBS] [-t THREADS] [-n TOKENS] [-g GREEDY] [-c CHUNK] [-p POLICIES]" \
            "[-b BUDGETS] CORPUS_DIR OUT_DIR" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 2 ] || { echo "usage: $0 [options] CORPUS_DIR OUT_DIR" >&2; exit 2; }
CORPUS=$1 OUTDIR=$2
KF=${KFCHAT:-./kfchat}
[ -x "$KF" ] || { echo "run_eval.sh: $KF is not built (make kfchat, or set KFCHAT)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "run_eval.sh: python3 is needed for the merge" >&2; exit 1; }
ls "$CORPUS"/*.txt >/dev/null 2>&1 || { echo "run_eval.sh: no *.txt in $CORPUS" >&2; exit 1; }
mkdir -p "$OUTDIR/json" "$OUTDIR/log"
export KF KF_MODEL="${KF_MODEL:-}" OUTDIR THREADS TOKENS GREEDY CHUNK BUDGETS

# run_jobs: read "doc policy budget" lines, run them JOBS at a time; stop at the first failure
run_jobs() {
    xargs -P "$JOBS" -n 3 sh -c '
        doc=$1 pol=$2 bud=$3 name=$(basename "$doc" .txt)__${pol}__$(echo "$bud" | tr -d %)
        [ -s "$OUTDIR/json/$name.json" ] && exit 0
        if "$KF" eval ${KF_MODEL:+-m "$KF_MODEL"} -t "$THREADS" --text "$doc" --kv-policy "$pol" \
            --kv-budget "$bud" --tokens "$TOKENS" --chunk "$CHUNK" --greedy "$GREEDY" \
            --ref-dir "$OUTDIR/ref" --json >"$OUTDIR/json/$name.tmp" 2>"$OUTDIR/log/$name.log"
        then
            mv "$OUTDIR/json/$name.tmp" "$OUTDIR/json/$name.json"
        else
            echo "run_eval.sh: job $name failed: $(tail -n 1 "$OUTDIR/log/$name.log")" >&2
            rm -f "$OUTDIR/json/$name.tmp"
            exit 255  # stops xargs
        fi' sh
}
mkdir -p "$OUTDIR/ref"
t0=$(date +%s)
# document by document, so that a run cut short leaves whole documents behind
[ "$MERGE_ONLY" = 1 ] || for doc in "$CORPUS"/*.txt; do
    echo "$doc full -" | THREADS=$((JOBS * THREADS)) run_jobs
    for pol in $POLICIES; do
        for bud in $(echo "$BUDGETS" | tr , ' '); do
            echo "$doc $pol $bud"
        done
    done | run_jobs
done
t1=$(date +%s)
[ "$MERGE_ONLY" = 1 ] || echo "run_eval.sh: jobs took $((t1 - t0)) s (JOBS=$JOBS, THREADS=$THREADS)" >&2

python3 - "$OUTDIR" "$POLICIES" "$BUDGETS" <<'EOF'
import glob, json, os, sys

outdir, policies, budgets = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(",")
runs = [json.load(open(f)) for f in sorted(glob.glob(os.path.join(outdir, "json", "*.json")))]
if not runs:
    sys.exit("run_eval.sh: no results")
meta = runs[0]
full = {}     # doc path -> full's PPL (must agree across jobs)
rows = {}     # (policy, budget) -> list of per-doc dicts
runs = [r for r in runs if r["results"] and r["results"][0]["policy"] != "full"]
for r in runs:
    for key in ("model", "tokens", "chunk", "greedy", "kv_recent", "tau_init", "tau_end",
                "tau_steps", "kv_seed"):
        if r[key] != meta[key]:
            sys.exit(f"run_eval.sh: results mix {key}={r[key]} and {meta[key]}")
    for d in r["documents"]:
        p = os.path.basename(d["path"])
        if p in full and full[p] != d["ppl_full"]:
            sys.exit(f"run_eval.sh: full PPL of {p} differs between jobs ({full[p]} vs "
                     f"{d['ppl_full']}): the reference is not deterministic")
        full[p] = d["ppl_full"]
    for res in r["results"]:
        for pd in res["per_doc"]:
            pd = dict(pd, path=os.path.basename(r["documents"][pd["doc"]]["path"]),
                      budget_tokens=res["budget_tokens"])
            rows.setdefault((res["policy"], res["budget"]), []).append(pd)

def mean(v):
    return sum(v) / len(v) if v else float("nan")

# only documents that have every (policy, budget): all rows average over the same documents
want = [(p, b) for p in policies for b in budgets]
have = {}
for key, v in rows.items():
    for x in v:
        have.setdefault(x["path"], set()).add(key)
complete = sorted(p for p in full if have.get(p, set()) >= set(want))
partial = sorted(p for p in full if p not in complete)
if not complete:
    sys.exit("run_eval.sh: no document has all its results yet")
full_all = full
full = {p: full[p] for p in complete}
rows = {k: [x for x in v if x["path"] in full] for k, v in rows.items()}
nd = len(full)
summary = []
for pol in policies:
    for b in budgets:
        v = rows.get((pol, b), [])
        if not v:
            continue
        summary.append(dict(policy=pol, budget=b, budget_tokens=v[0]["budget_tokens"],
                            docs=len(v), ppl=mean([x["ppl"] for x in v]),
                            ratio=mean([x["ppl_ratio"] for x in v]),
                            agreement=mean([x["agreement"] for x in v]), per_doc=v))
S = {(s["policy"], s["budget"]): s for s in summary}

L = []
L.append(f"Model: {meta['model']} ({os.path.basename(meta['path'])}); {nd} documents x "
         f"{meta['tokens']} tokens; chunk {meta['chunk']}; greedy {meta['greedy']}; recent "
         f"window {meta['kv_recent'] * 100:.0f}% of the budget; tau {meta['tau_init']:g} -> "
         f"{meta['tau_end']:g} over {meta['tau_steps']} tokens past the budget; noise seed "
         f"{meta['kv_seed']}.")
if partial:
    L.append(f"Incomplete (left out of the table): {', '.join(partial)}.")
L.append("")
L.append("PPL relative to full (mean over documents of PPL_policy / PPL_full), as Δ%:")
L.append("")
L.append("| policy | " + " | ".join(budgets) + " |")
L.append("|---|" + "---:|" * len(budgets))
for pol in policies:
    L.append(f"| {pol} | " + " | ".join(
        f"{(S[(pol, b)]['ratio'] - 1) * 100:+.2f}%" if (pol, b) in S else "-" for b in budgets) + " |")
L.append("")
L.append(f"Greedy agreement with full over the next {meta['greedy']} tokens (mean over documents):")
L.append("")
L.append("| policy | " + " | ".join(budgets) + " |")
L.append("|---|" + "---:|" * len(budgets))
for pol in policies:
    L.append(f"| {pol} | " + " | ".join(
        f"{S[(pol, b)]['agreement'] * 100:.1f}%" if (pol, b) in S else "-" for b in budgets) + " |")
L.append("")
L.append("All numbers:")
L.append("")
L.append("| policy | budget (tokens) | docs | PPL | PPL/full | Δ% | greedy agreement |")
L.append("|---|---:|---:|---:|---:|---:|---:|")
L.append(f"| full | - | {nd} | {mean(list(full.values())):.3f} | 1.0000 | +0.00 | 100.0% |")
for s in summary:
    L.append(f"| {s['policy']} | {s['budget']} ({s['budget_tokens']}) | {s['docs']} | "
             f"{s['ppl']:.3f} | {s['ratio']:.4f} | {(s['ratio'] - 1) * 100:+.2f} | "
             f"{s['agreement'] * 100:.1f}% |")
L.append("")
L.append("Per document, full-cache PPL:")
L.append("")
L.append("| document | PPL (full) |")
L.append("|---|---:|")
for p in sorted(full):
    L.append(f"| {p} | {full[p]:.3f} |")
L.append("")
L.append("Targets:")
L.append("")
if ("keyformer", "50%") in S:
    d = (S[("keyformer", "50%")]["ratio"] - 1) * 100
    L.append(f"- keyformer at 50% within 1% of full: Δ = {d:+.2f}% — "
             f"{'met' if d <= 1.0 else 'NOT met'}")
for b in budgets:
    k, h, w = (S.get((p, b)) for p in ("keyformer", "h2o", "window"))
    if k and h and w:
        ok = k["ratio"] <= h["ratio"] < w["ratio"]
        L.append(f"- {b}: keyformer {k['ratio']:.4f} <= h2o {h['ratio']:.4f} < window "
                 f"{w['ratio']:.4f} — {'met' if ok else 'NOT met'}")
text = "\n".join(L) + "\n"
open(os.path.join(outdir, "table.md"), "w").write(text)
json.dump(dict(meta={k: meta[k] for k in meta if k not in ("documents", "results", "skipped")},
               full=full, incomplete=partial, summary=summary),
          open(os.path.join(outdir, "results.json"), "w"), indent=1)
sys.stdout.write(text)
EOF
