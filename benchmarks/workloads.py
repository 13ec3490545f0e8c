"""Small-object pickle workloads, measured per call by `tools bench`.

Each workload builds a fresh object of many small parts.  `records` is
shaped like the objects of pyperformance's pickle benchmarks; `list` and
`dict` are its pickle_list and pickle_dict shapes; `str` is text-heavy,
with ASCII, Latin-1 and UCS-2 strings.  Runs unchanged on Python 3.7 to
3.13 and imports nothing.
"""


def records():
    base = {"ads_flags": 0, "age": 18, "bulletin_count": 0,
            "comment_count": 0, "country": "BR", "encrypted_id": "G9urXXAJwjE",
            "favorite_artists": ["wamz", "Tr\u00ecnh", "Ruth", "Yoko Ono"],
            "gender": "male", "location": "S\u00e3o Paulo", "name": "Ed",
            "photos": {"small": "a.jpg", "medium": "b.jpg", "large": "c.jpg"},
            "profile_views": 16, "verified": True, "score": 0.75}
    group = []
    for i in range(3):
        d = dict(base)
        d["age"] = 18 + i
        d["name"] = "user-%d" % i
        group.append(d)
    numbers = (list(range(265867233, 265867233 + 40 * 977, 977)), 60)
    return [base, numbers, group]


def lists():
    return [[list(range(10)), list(range(10))] for _ in range(10)]


def dicts():
    return {key: dict.fromkeys(range(10)) for key in range(100)}


def strings():
    words = ["amber", "basalt", "cobalt", "dune", "ember", "fjord"]
    out = []
    for i in range(200):
        w = words[i % len(words)]
        if i % 4 == 0:
            out.append("%s \u00e9t\u00e9 %d" % (w, i))
        elif i % 4 == 1:
            out.append("\u2192 %s-%d \u2190 \u65e5\u672c" % (w, i))
        else:
            out.append(("%s-%d-%s " % (w, i, w[::-1])) * 3)
    return out


WORKLOADS = {"records": records, "list": lists, "dict": dicts, "str": strings}
OPERATIONS = ("dumps", "loads")
