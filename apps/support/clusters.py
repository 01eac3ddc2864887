"""Names suggested for the clusters of unlabelled questions an import makes: the
terms that set a cluster apart (TF-IDF across clusters) and its most typical
question. Until staff name a cluster, its questions train under the suggestion
(``provisional_labels``), so an unlabelled import gets a usable intent model."""
from __future__ import annotations

import math
import re
from collections import Counter

WORD = re.compile(r"[a-z][a-z'-]{2,}")
STOPWORDS = frozenset("""
the and for you your are was were with this that have has had not but can could would should will just
hello hi hey thanks thank please name my me our its it's i'm i've what when where which who how why
there here from into about any some all get got does did doing been being also very much more than
then them they their one can't don't isn't want need like know yes okay dear good morning afternoon evening
""".split())
TOP_TERMS = 3
MIN_PROVISIONAL = 3  # a smaller cluster trains no intent of its own (retrieval still finds its questions)


def terms(text: str) -> list[str]:
    return [w.strip("'-") for w in WORD.findall(text.lower()) if w.strip("'-") not in STOPWORDS]


def suggest(clusters: dict[int, list[str]]) -> dict[int, dict]:
    """{cluster id: {"name", "terms", "representative"}} from each cluster's questions."""
    docs = {cid: Counter(t for q in qs for t in set(terms(q))) for cid, qs in clusters.items()}
    df = Counter(t for counts in docs.values() for t in counts)
    n = max(1, len(docs))
    out = {}
    for cid, questions in clusters.items():
        size = max(1, len(questions))
        weight = {t: (c / size) * math.log(1 + n / df[t]) for t, c in docs[cid].items()}
        top = [t for t, _ in sorted(weight.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_TERMS]]
        # The most typical question: the highest mean weight of its distinct terms.
        representative = max(questions, key=lambda q: (
            sum(weight.get(t, 0.0) for t in set(terms(q))) / max(1, len(set(terms(q)))), -len(q)), default="")
        out[cid] = {"name": "-".join(top[:2]) or f"cluster-{cid}", "terms": top, "representative": representative}
    return out


def unnamed_clusters() -> dict[int, list[str]]:
    from apps.support.models import TranscriptPair

    out: dict[int, list[str]] = {}
    for cid, q in TranscriptPair.objects.filter(cluster__isnull=False, cluster__name="").values_list(
            "cluster_id", "question"):
        out.setdefault(cid, []).append(q)
    return out


def provisional_labels() -> dict[int, str]:
    """{cluster id: the intent its questions train under until staff name it}: the
    suggested name, marked as such and made unique by the cluster id."""
    clusters = unnamed_clusters()
    return {cid: f"~{s['name']}-{cid}" for cid, s in suggest(clusters).items()
            if len(clusters[cid]) >= MIN_PROVISIONAL}
