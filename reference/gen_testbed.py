"""Reference enumeration of the ComposLoRA testbed (docs/testbed.md §4-§5).

Writes the golden lists the C tests compare `loramix testbed plan` against:

  tests/fixtures/testbed/sets.tsv     every composition set of both subsets,
                                      in the reference order: subset, N, set
                                      (1-based within subset and N), LoRA ids
                                      (comma-joined, composition order), prompt
  tests/fixtures/testbed/subsets.tsv  subset, base prompt, negative prompt

The enumeration is the upstream utils.generate_combinations (itertools
combinations over the non-character categories, product over the LoRAs,
last category fastest) over the JSON key order, and the prompt is
utils.get_prompt's concatenation rule. The LoRA info files are read from
data/testbed/ (byte-identical copies of the upstream files); the base and
negative prompts are the spec's strings, typed here independently of
data/testbed/testbed.json so that the C test checks that file too.
"""
import json
import os
import sys
from itertools import combinations, product

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import FIXTURES, FORMAT_VERSION, ROOT, command  # noqa: E402

SUBSETS = ["anime", "reality"]
BASE = {
    "anime": "masterpiece, best quality",
    "reality": "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up",
}
NEGATIVE = {
    "anime": "EasyNegative, extra fingers, extra limbs, fewer fingers, fewer limbs, multiple girls, multiple views, worst quality, low quality, depth of field, blurry, greyscale, 3D face, cropped, lowres, text, jpeg artifacts, signature, watermark, username, blurry, artist name, trademark, watermark, title, reference sheet, curvy, plump, fat, muscular female, strabismus, clothing cutout, side slit, tattoo, nsfw",
    "reality": "extra heads, nsfw, deformed iris, deformed pupils, semi-realistic, cgi, 3d, render, sketch, cartoon, drawing, anime, text, cropped, out of frame, worst quality, low quality, jpeg artifacts, ugly, duplicate, morbid, mutilated, extra fingers, mutated hands, poorly drawn hands, poorly drawn face, mutation, deformed, blurry, dehydrated, bad anatomy, bad proportions, extra limbs, cloned face, disfigured, gross proportions, malformed limbs, missing arms, missing legs, extra arms, extra legs, fused fingers, too many fingers, long neck",
}
COUNTS = {2: 24, 3: 72, 4: 96, 5: 48}


def generate_combinations(info, n):
    """docs/testbed.md §5, verbatim in substance."""
    cats = list(info.keys())
    others = [c for c in cats if c != "character"]
    for types in combinations(others, n - 1):
        cur = ["character"] + list(types)
        for combo in product(*[info[c] for c in cur]):
            yield combo


def get_prompt(subset, combo):
    return BASE[subset] + ", " + ", ".join(t for lora in combo for t in lora["trigger"])


def main():
    out_dir = os.path.join(FIXTURES, "testbed")
    os.makedirs(out_dir, exist_ok=True)
    head = [f"# format_version {FORMAT_VERSION}",
            f"# command {command()}",
            "# the reference enumeration of docs/testbed.md §5 (utils.generate_combinations)"]
    rows = []
    for subset in SUBSETS:
        with open(os.path.join(ROOT, "data", "testbed", f"{subset}_lora_info.json"), "rb") as f:
            info = json.loads(f.read().decode("utf-8"))
        assert list(info.keys()) == ["character", "clothing", "style", "background", "object"]
        for n in (2, 3, 4, 5):
            sets = list(generate_combinations(info, n))
            assert len(sets) == COUNTS[n], (subset, n, len(sets))
            for k, combo in enumerate(sets, 1):
                ids = [lora["id"] for lora in combo]
                prompt = get_prompt(subset, combo)
                assert "\t" not in prompt and "\n" not in prompt
                rows.append(f"{subset}\t{n}\t{k}\t{','.join(ids)}\t{prompt}")
    assert len(rows) == 480
    # Spot checks from the spec text.
    first5 = [r for r in rows if r.startswith("reality\t5\t1\t")][0]
    assert first5.split("\t")[4] == (
        "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from "
        "knees up, iu1, long straight black hair, hazel eyes, diamond stud earrings, mahalaiuniform, "
        "white shirt short sleeves, black pencil skirt, film overlay, film grain, lib_bg, library "
        "bookshelf, transparent umbrella")
    path = os.path.join(out_dir, "sets.tsv")
    with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(head + ["# subset\tN\tset\tloras\tprompt"] + rows) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(rows)} sets)")
    path = os.path.join(out_dir, "subsets.tsv")
    with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(head[:2] + ["# subset\tbase prompt\tnegative prompt"] +
                          [f"{s}\t{BASE[s]}\t{NEGATIVE[s]}" for s in SUBSETS]) + "\n")
    os.replace(path + ".tmp", path)
    print(f"wrote {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    main()
