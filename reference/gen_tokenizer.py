"""Golden data for the CLIP tokenizer (src/model/tokenizer.c).

Mirrors transformers 4.45.1's slow CLIPTokenizer *without* ftfy, i.e. the
BasicTokenizer(strip_accents=False, do_split_on_punc=False) clean-up path.

Writes into tests/fixtures/tokenizer/:
  sd15/special_tokens_map.json, sd15/tokenizer_config.json
                                     as in an SD1.5 `tokenizer/` folder (pad = <|endoftext|>)
  sd2/special_tokens_map.json, sd2/tokenizer_config.json
                                     as in an SD2 `tokenizer/` folder (pad = "!", id 0)
  corpus.safetensors                 the test strings and transformers' ids:
      text_blob    I32 [ceil(B/4)]   all strings' UTF-8 bytes, packed 4 per int32 (little-endian)
      text_off     I64 [n+1]         string i = bytes text_off[i] .. text_off[i+1]
      ids          I32 [total]       raw BPE ids (tokenizer(s, add_special_tokens=False))
      ids_off      I64 [n+1]
      pad_idx      I64 [m]           strings whose padded sequences are checked
      pad_sd15     I32 [m, 77]       tokenizer(s, padding="max_length", max_length=77, truncation=True)
      pad_sd2      I32 [m, 77]       the same with the SD2 tokenizer (its raw ids differ where "!" occurs)
      raw_sd2      I32 [m]           number of raw ids with the SD2 tokenizer
      pad_openai   I32 [m, 77]       OpenAI clip.tokenize framing (pad 0; overflow: first 77, last = EOT)
      category     I64 [n]           which group a string belongs to (see CATEGORIES in metadata)
  uprops.safetensors                 Python 3.11's per-code-point behaviour, as runs:
      start I32 [r], cls I32 [r], ldelta I32 [r]   run k covers start[k] .. start[k+1]-1
      cls bits: 0-2 clean-up (0 keep, 1 drop, 2 to space, 3 CJK spaced, 4 word separator)
                3-4 regex class with IGNORECASE (0 none, 1 [\\p{L}], 2 [\\p{N}], 3 [^\\s\\p{L}\\p{N}])
                5-6 final-sigma context class (0 neither, 1 cased, 2 case-ignorable)
      ldelta: ord(c.lower()) - ord(c), or 0x7fffffff when c.lower() is not one character

The reference tokenizer reads vocab.json/merges.txt (the HF files of openai/clip-vit-large-patch14)
rebuilt in a temporary folder from data/clip/bpe_simple_vocab_16e6.txt.gz exactly as OpenAI's
simple_tokenizer builds its table; the pair is not stored (1.4 MB): the C test writes its own copy
from the same .gz, and also reads tests/fixtures/models/tiny-sd/tokenizer/ when that exists.

Also checks, on every code point, that Debian's libutf8proc NFC equals Python's (ctypes).

Run: OMP_NUM_THREADS=2 /opt/lmxref/bin/python reference/gen_tokenizer.py
"""
import ctypes
import gzip
import itertools
import json
import os
import random
import shutil
import sys
import tempfile
import unicodedata

import numpy as np
import regex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

from transformers import CLIPTokenizer  # noqa: E402
from transformers.models.clip.tokenization_clip import bytes_to_unicode  # noqa: E402

SEED = 1234
OUT = os.path.join(common.FIXTURES, "tokenizer")
SPEC = os.path.join(common.ROOT, "data")  # data/testbed/: the upstream lora_info files, byte for byte
GZ = os.path.join(common.ROOT, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")

# ---------------------------------------------------------------- files

def added(content):
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": True,
            "rstrip": False, "single_word": False}


def plain(content):
    return {"content": content, "lstrip": False, "normalized": True, "rstrip": False,
            "single_word": False}


# SD1.5's tokenizer/tokenizer_config.json (runwayml/stable-diffusion-v1-5) and its map.
SD15_CONFIG = {
    "add_prefix_space": False, "bos_token": added("<|startoftext|>"), "do_lower_case": True,
    "eos_token": added("<|endoftext|>"), "errors": "replace", "model_max_length": 77,
    "name_or_path": "openai/clip-vit-large-patch14", "pad_token": "<|endoftext|>",
    "special_tokens_map_file": "./special_tokens_map.json", "tokenizer_class": "CLIPTokenizer",
    "unk_token": added("<|endoftext|>"),
}
SD15_MAP = {"bos_token": plain("<|startoftext|>"), "eos_token": plain("<|endoftext|>"),
            "pad_token": "<|endoftext|>", "unk_token": plain("<|endoftext|>")}
# SD2 (stabilityai/stable-diffusion-2-1): the config still says <|endoftext|>, the map says "!",
# and the map wins in from_pretrained.
SD2_CONFIG = dict(SD15_CONFIG, name_or_path="stabilityai/stable-diffusion-2")
SD2_MAP = {"bos_token": plain("<|startoftext|>"), "eos_token": plain("<|endoftext|>"),
           "pad_token": "!", "unk_token": plain("<|endoftext|>")}


def build_table():
    """OpenAI simple_tokenizer's table from the bundled merges."""
    lines = gzip.open(GZ).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408
    return {v: i for i, v in enumerate(vocab)}, merges


def write_json(path, obj, **kw):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, **kw)
        f.write("\n")


def write_fixture_files(encoder, merges, tmp):
    sd15 = os.path.join(OUT, "sd15")
    sd2 = os.path.join(OUT, "sd2")
    os.makedirs(sd15, exist_ok=True)
    os.makedirs(sd2, exist_ok=True)
    write_json(os.path.join(sd15, "tokenizer_config.json"), SD15_CONFIG, indent=2)
    write_json(os.path.join(sd15, "special_tokens_map.json"), SD15_MAP, indent=2)
    write_json(os.path.join(sd2, "tokenizer_config.json"), SD2_CONFIG, indent=2)
    write_json(os.path.join(sd2, "special_tokens_map.json"), SD2_MAP, indent=2)
    # The hub's vocab.json is one line, non-ASCII kept as UTF-8; merges.txt has the version header.
    for sub in ("sd15", "sd2"):
        d = os.path.join(tmp, sub)
        os.makedirs(d)
        write_json(os.path.join(d, "vocab.json"), encoder, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
            f.write("#version: 0.2\n")
            for a, b in merges:
                f.write(f"{a} {b}\n")
        for f in ("tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(os.path.join(OUT, sub, f), d)
    return os.path.join(tmp, "sd15"), os.path.join(tmp, "sd2")


def load_tokenizers(sd15, sd2):
    t15 = CLIPTokenizer.from_pretrained(sd15)
    t2 = CLIPTokenizer.from_pretrained(sd2)
    assert t15.model_max_length == 77 and t2.model_max_length == 77
    assert t15.pad_token_id == 49407 and t2.pad_token_id == 0, (t15.pad_token_id, t2.pad_token_id)
    assert t15.fix_text is None, "ftfy must not be installed"
    return t15, t2

# ---------------------------------------------------------------- corpus


def testbed_prompts():
    """Every testbed prompt (docs/testbed.md §4-§5), the ablated prompts (docs/methods.md §7.2) and the
    trigger strings (§7.3). Returns (full prompts, ablated, triggers, negatives, bases)."""
    base = {"anime": "masterpiece, best quality",
            "reality": "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, "
                       "half-length portrait from knees up"}
    neg = {"anime": "EasyNegative, extra fingers, extra limbs, fewer fingers, fewer limbs, multiple "
                    "girls, multiple views, worst quality, low quality, depth of field, blurry, "
                    "greyscale, 3D face, cropped, lowres, text, jpeg artifacts, signature, watermark, "
                    "username, blurry, artist name, trademark, watermark, title, reference sheet, "
                    "curvy, plump, fat, muscular female, strabismus, clothing cutout, side slit, "
                    "tattoo, nsfw",
           "reality": "extra heads, nsfw, deformed iris, deformed pupils, semi-realistic, cgi, 3d, "
                      "render, sketch, cartoon, drawing, anime, text, cropped, out of frame, worst "
                      "quality, low quality, jpeg artifacts, ugly, duplicate, morbid, mutilated, "
                      "extra fingers, mutated hands, poorly drawn hands, poorly drawn face, "
                      "mutation, deformed, blurry, dehydrated, bad anatomy, bad proportions, extra "
                      "limbs, cloned face, disfigured, gross proportions, malformed limbs, missing "
                      "arms, missing legs, extra arms, extra legs, fused fingers, too many fingers, "
                      "long neck"}
    import re as pyre
    full, ablated, trig = [], [], []
    for sub in ("anime", "reality"):
        with open(os.path.join(SPEC, "testbed", f"{sub}_lora_info.json")) as f:
            info = json.load(f)
        cats = list(info.keys())
        others = [c for c in cats if c != "character"]
        for n in (2, 3, 4, 5):
            for types in itertools.combinations(others, n - 1):
                cur = ["character"] + list(types)
                for combo in itertools.product(*[info[c] for c in cur]):
                    p = base[sub] + ", " + ", ".join(t for lo in combo for t in lo["trigger"])
                    full.append(p)
                    for lo in combo:
                        q = p
                        for t in lo["trigger"]:
                            q = pyre.sub(r"\b" + pyre.escape(t) + r"\b", "", q, flags=pyre.IGNORECASE)
                        q = pyre.sub(r"\s*,\s*,\s*", ", ", q)
                        q = pyre.sub(r"\s+", " ", q).strip()
                        q = q.strip(",").strip()
                        ablated.append(q)
        for c in cats:
            for lo in info[c]:
                trig.append(", ".join(t for t in lo["trigger"] if t != ""))
                trig.extend(lo["trigger"])
    return full, ablated, trig, list(neg.values()), list(base.values())


HANDWRITTEN = [
    # spec test vectors and plain prompts
    "RAW photo, subject, 8k uhd, dslr, high quality, Fujifilm XT3, half-length portrait from knees up",
    "masterpiece, best quality", "a photo of a cat", "A Photo Of A CAT", "an astronaut riding a horse on mars",
    "portrait of a woman, 85mm, f/1.8, bokeh", "8k", "1024x768", "3.14", "3,14", "1e-5", "v1.5", "4K UHD",
    "1girl, solo", "2boys", "(masterpiece:1.2)", "((best quality))", "[red:blue:0.5]", "{a|b}",
    "<lora:foo:0.8>", "score_9, score_8_up", "BREAK", "a, b,, c ,d", "trailing comma,", ",leading",
    # trigger words
    "th3r0ck", "th3r0ck with no hair", "lib_bg", "mahalaiuniform", "iu1", "EasyNegative", "easynegative",
    "shuimobysim", "omertosa", "gmuniform", "bamboolight", "slg", "kamado nezuko", "1girl",
    "hand-drawn style", "two-handed burger",
    # contractions
    "don't", "it's", "they're", "we've", "I'm", "you'll", "he'd", "DON'T", "IT'S", "THEY'RE", "I'M",
    "'s", "'t", "''s", "'''", "rock'n'roll", "o'clock", "the cat's toy", "dogs' bowls", "it\u2019s",
    "x's's", "'S", "'ll'd", "'", "''", "'re", "'ve'm",
    # punctuation runs
    "!!!", "?!", "...", "\u2026", "--", "\u2014", "a--b", "a...b", "#hashtag", "@user", "$100", "100%",
    "C++", "e-mail", "a/b\\c", "~~~", "^_^", ":-)", "<3", "|", "||", "<|>", "&", "&&",
    "hello!", "wow!!! great", "!hello", "a!b!c", "!", " ! ", "!!", "hello !!! world !",
    # HTML entities (not unescaped without ftfy)
    "&amp;", "Tom &amp; Jerry", "&lt;tag&gt;", "&quot;quoted&quot;", "&#39;", "&#x27;", "caf&eacute;",
    "&nbsp;space", "&amp;amp;",
    # special tokens
    "<|startoftext|>", "<|endoftext|>", "a<|endoftext|>b", "a <|endoftext|> b",
    "<|startoftext|>hello<|endoftext|>", "<|ENDOFTEXT|>", "<|EndOfText|>x", "'<|endoftext|>s",
    "<|endoftext|><|endoftext|>", "<|endoftext", "endoftext|>", "<|endof text|>", "<|endof\x00text|>",
    "<|endof\u200btext|>", "<|\u017ftartoftext|>", "x'\u017f", "<|startoftext|>!", "!<|endoftext|>!",
    "<<|endoftext|>>", "<|startoftext|><|startoftext|>",
    # whitespace and control characters
    "", " ", "   ", "\t", "\n", "\r\n", " \t\n ", "a\tb", "a\nb", "a\r\nb", "a  b", "  leading",
    "trailing  ", "a\u00a0b", "a\u2003b", "a\u3000b", "a\u2028b", "a\u2029b", "a\u0085b", "a\u000bb",
    "a\u000cb", "a\u001cb", "a\u001fb", "a\x00b", "\x00", "a\ufffdb", "\ufffd", "a\u200bb",
    "a\u200db", "a\u00adb", "a\u2060b", "a\ufeffb", "a\u202eb", "a\u0007b", "a\x7fb", "a\x1bb",
    "a\u180eb", "a\u1680b", "a\u205fb", "a\u202fb", "\ue000", "a\U000f0000b", "a\U0001f9ffb",
    # accents, NFC/NFD
    "caf\u00e9", "cafe\u0301", "CAF\u00c9", "CAFE\u0301", "na\u00efve", "nai\u0308ve", "\u00c5ngstr\u00f6m",
    "A\u030angstro\u0308m", "\u212bngstr\u00f6m", "\u1e9b\u0323", "\u0071\u0307\u0323", "\u00f1", "n\u0303",
    "Se\u00f1or Jos\u00e9", "cr\u00e8me br\u00fbl\u00e9e", "\u01c4", "\u01c5", "\u01c6", "\u1e0b\u0323",
    "e\u0301\u0301", "\u0301", "a\u0301\u0327", "a\u0327\u0301", "\u0340", "\u0344", "\u2126", "\u212a",
    "\u0958", "\u1100\u1161", "\u1100\u1161\u11a8", "\uac00\u11a8", "\ud55c\uad6d\uc5b4",
    # case mapping
    "\u0130stanbul", "\u0130", "I\u0307", "\u0131", "DIYARBAKIR", "Stra\u00dfe", "STRASSE", "\u1e9e",
    "\u03a3", "\u039f\u0394\u039f\u03a3", "\u039f\u0394\u039f\u03a3 \u039f\u0394\u039f\u03a3.", "\u03a3\u0391",
    "\u0391\u03a3\u0391", "\u0391\u03a3", "\u0391\u03a3'", "\u0391\u03a3'\u0391", "\u0391\u0301\u03a3",
    "\u0391\u03a3\u0301", "\u0391\u03a3\u0301\u0391", "A\u03a3", "1\u03a3", "\u0391\u03a3\u03a3",
    "\u00aa\u03a3", "\u2160\u03a3", "\u24b6\u03a3", "\u02b0\u03a3", "x\u02b0\u03a3", "\u1f88", "\u1fbc",
    "\u0345", "a\u0345b", "\u0399\u0345", "!\u0345!", "1\u03452", "\u017f", "\u017ft", "\u212a",
    "\u0149", "\u01f0", "\u1e96", "\ufb00", "\ufb01", "\u0587", "\u2c65", "\u023a", "\ua7ae", "\U00010400",
    "\U0001e900", "\U00016e40", "\u10a0", "\u13a0", "\uab70",
    # scripts
    "\u732b", "\u4e00\u53ea\u732b", "\u732b\u306e\u5199\u771f", "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c",
    "\u30ab\u30bf\u30ab\u30ca", "\uff8a\uff9d\uff76\uff78", "\ud55c\uad6d\uc5b4 \ubb38\uc7a5",
    "\u0645\u0631\u062d\u0628\u0627", "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 123",
    "\u05e9\u05dc\u05d5\u05dd", "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\u041f\u0440\u0438\u0432\u0435\u0442 \u041c\u0418\u0420", "\u10d2\u10d0\u10db\u10d0\u10e0\u10ef\u10dd\u10d1\u10d0",
    "\u0531\u0532\u0533", "\u1780\u17d2\u1798\u17c2\u179a", "\uf900\uf901", "\U0002f800",
    "\U00020000\U0002a6d6", "\u3400", "\u9fff", "\u2e80\u2f00", "\u3007", "\u4e00abc\u4e01",
    "abc\u732bdef", "\uff21\uff22\uff23", "\uff11\uff12\uff13", "\u2460\u2461", "\u00bd",
    "\u0663\u0664\u0665", "\u0966\u0967", "\u2167", "\U0001d7d8", "x\u00b2", "\u00b2\u00b3",
    # emoji
    "\U0001f600", "\U0001f600\U0001f600", "I \u2764\ufe0f NY", "\U0001f44d\U0001f3fd",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f3f3\ufe0f\u200d\U0001f308",
    "\U0001f1ef\U0001f1f5", "\U0001f9d1\U0001f3fb\u200d\U0001f3a8", "cat \U0001f408 dog \U0001f415",
    "\u2603", "\u00a9\u00ae\u2122", "\u2190\u2192", "#\ufe0f\u20e3", "\U0001faf1\U0001f3fb\u200d\U0001faf2\U0001f3ff",
    # quotes and typography
    "\u201cquoted\u201d", "\u2018single\u2019", "\u00abguillemets\u00bb", "\u300ckagi\u300d",
    "en\u2013dash", "\u00b0C", "\u00d7", "\u00f7", "\u2022 bullet", "\u00b7", "\u2024",
]


def random_strings(rng, n):
    pools = [
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789",
        " ,.!?'\"-_()[]{}<>|:;/\\@#$%^&*+=~`", " \t\n\r\u00a0\u3000\u2028",
        "\u0300\u0301\u0308\u0327\u0345\u0307\u20e3\ufe0f\u200d\u200b\u00ad",
        "\u00e9\u00c9\u00df\u0130\u0131\u03a3\u03c3\u03c2\u0391\u017f\u212a\u1e9e\u01c5\u00aa\u02b0",
        "\u732b\u4e00\u3042\u30a2\ud55c\u1100\u1161\u11a8\u0645\u05e9\u0928\u0e2a",
        "\x00\x01\x1f\x7f\x85\ufffd\ue000\ufeff",
        "\U0001f600\U0001f44d\U0001f3fd\U0001f468\U0001f1ef\u2764",
    ]
    special = ["<|endoftext|>", "<|startoftext|>", "'s", "'ll", "'re", "&amp;", "8k"]
    out = []
    for _ in range(n):
        k = rng.randint(1, 40)
        s = []
        for _ in range(k):
            r = rng.random()
            if r < 0.05:
                s.append(rng.choice(special))
            else:
                pool = pools[rng.choice([0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])]
                s.append(rng.choice(pool))
        out.append("".join(s))
    return out


def long_strings(rng, words):
    out = ["a " * 80, "a, " * 40, "word " * 200, ", ".join(words[:120]), "x" * 500,
           "supercalifragilisticexpialidocious " * 10, "1" * 100, "!" * 300,
           " ".join(words[:74]), " ".join(words[:75]), " ".join(words[:76])]
    for _ in range(10):
        out.append(" ".join(rng.choice(words) for _ in range(rng.randint(60, 160))))
    return out

# ---------------------------------------------------------------- unicode table


def uprops():
    pl = regex.compile(r"[\p{L}]", regex.IGNORECASE)
    pn = regex.compile(r"[\p{N}]", regex.IGNORECASE)
    po = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)
    sig = "\u03a3"
    from transformers.models.clip.tokenization_clip import BasicTokenizer
    from transformers.tokenization_utils import _is_control, _is_whitespace
    bt = BasicTokenizer(strip_accents=False, do_split_on_punc=False)
    starts, clss, deltas = [], [], []
    prev = None
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            key = (1 << 0, 0)  # never reaches the tokenizer (not valid UTF-8): count as dropped
        else:
            c = chr(cp)
            if cp == 0 or cp == 0xFFFD or _is_control(c):
                clean = 1
            elif _is_whitespace(c):
                clean = 2
            elif bt._is_chinese_char(cp):
                clean = 3
            elif c.isspace():
                clean = 4
            else:
                clean = 0
            rc = 0
            if clean in (0, 3):
                if pl.fullmatch(c):
                    rc = 1
                elif pn.fullmatch(c):
                    rc = 2
                elif po.fullmatch(c):
                    rc = 3
            a = ("x" + sig + c + "x").lower()[1] == "\u03c2"
            b = ("x" + sig + c).lower()[1] == "\u03c2"
            sc = 0 if a else (1 if not b else 2)
            low = c.lower()
            d = ord(low) - cp if len(low) == 1 else 0x7FFFFFFF
            key = (clean | (rc << 3) | (sc << 5), d)
        if key != prev:
            starts.append(cp)
            clss.append(key[0])
            deltas.append(key[1])
            prev = key
    return (np.array(starts, np.int32), np.array(clss, np.int32), np.array(deltas, np.int32))


def check_utf8proc_nfc():
    """libutf8proc (Unicode 15.0) NFC == Python 3.11 (Unicode 14.0) NFC on every code point that
    Python considers assigned, on each one's NFD form, and on random mark sequences."""
    lib = ctypes.CDLL("libutf8proc.so.2")
    lib.utf8proc_NFC.restype = ctypes.c_void_p
    lib.utf8proc_NFC.argtypes = [ctypes.c_char_p]
    libc = ctypes.CDLL(None)
    libc.free.argtypes = [ctypes.c_void_p]

    def nfc(s):
        p = lib.utf8proc_NFC(s.encode("utf-8"))
        r = ctypes.string_at(p).decode("utf-8")
        libc.free(p)
        return r
    bad = []
    marks = [chr(c) for c in range(0x300, 0x370)] + ["\u0345", "\u05b0", "\u093c", "\u3099", "\u302a"]
    rng = random.Random(7)
    for cp in range(1, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        if unicodedata.category(c) == "Cn":
            continue
        for s in (c, unicodedata.normalize("NFD", c)):
            if nfc(s) != unicodedata.normalize("NFC", s):
                bad.append(s)
        if unicodedata.combining(c) or cp < 0x250 or 0x1E00 <= cp <= 0x1FFF or 0xAC00 <= cp <= 0xAC40:
            s = c + "".join(rng.choice(marks) for _ in range(3))
            if nfc(s) != unicodedata.normalize("NFC", s):
                bad.append(s)
    print(f"utf8proc NFC vs Python: {len(bad)} differences", [ascii(b) for b in bad[:10]])
    assert not bad

# ---------------------------------------------------------------- main


def openai_frame(raw):
    toks = [49406] + list(raw) + [49407]
    if len(toks) > 77:
        toks = toks[:77]
        toks[-1] = 49407
    return toks + [0] * (77 - len(toks))


def main():
    common.setup(SEED)
    rng = random.Random(SEED)
    encoder, merges = build_table()
    tmp = tempfile.mkdtemp()
    sd15, sd2 = write_fixture_files(encoder, merges, tmp)
    t15, t2 = load_tokenizers(sd15, sd2)
    shutil.rmtree(tmp)
    tiny = os.path.join(common.FIXTURES, "models", "tiny-sd", "tokenizer")
    if os.path.exists(os.path.join(tiny, "vocab.json")):
        ttiny = CLIPTokenizer.from_pretrained(tiny)
        assert ttiny.encoder == encoder and ttiny.bpe_ranks == t15.bpe_ranks
        print("tests/fixtures/models/tiny-sd/tokenizer holds the same table")
    assert t15.encoder == encoder
    assert t15.bpe_ranks == {m: i for i, m in enumerate(merges)}

    full, ablated, trig, negs, bases = testbed_prompts()
    print(f"testbed: {len(full)} prompts, {len(ablated)} ablated ({len(set(ablated))} unique), "
          f"{len(set(trig))} trigger strings")
    words = sorted(set(w for p in full + negs for w in regex.findall(r"[A-Za-z0-9]+", p)))
    groups = [
        ("handwritten", HANDWRITTEN),
        ("testbed_base_negative", bases + negs),
        ("testbed_full", full),
        ("testbed_ablated", rng.sample(sorted(set(ablated)), 200)),
        ("testbed_triggers", sorted(set(trig))),
        ("long", long_strings(rng, words)),
        ("random", random_strings(rng, 400)),
    ]
    texts, cats, seen = [], [], set()
    for gi, (_, lst) in enumerate(groups):
        for s in lst:
            if s in seen:
                continue
            seen.add(s)
            texts.append(s)
            cats.append(gi)
    n = len(texts)

    ids, ids_off, blob, text_off = [], [0], bytearray(), [0]
    raw_all = []
    for s in texts:
        raw = t15(s, add_special_tokens=False)["input_ids"]
        assert raw == t15.convert_tokens_to_ids(t15.tokenize(s))
        raw_all.append(raw)
        ids.extend(raw)
        ids_off.append(len(ids))
        blob += s.encode("utf-8")
        text_off.append(len(blob))
    # Padded sequences: every base/negative and long string, every one with "!" or "<|", 1 in 12 others.
    pad_idx = [i for i in range(n) if cats[i] in (1, 5) or i % 12 == 0 or "!" in texts[i] or "<|" in texts[i]]
    pad15, pad2, padoa, raw2 = [], [], [], []
    for i in pad_idx:
        s = texts[i]
        e15 = t15(s, padding="max_length", max_length=77, truncation=True)["input_ids"]
        e2 = t2(s, padding="max_length", max_length=77, truncation=True)["input_ids"]
        assert len(e15) == 77 and len(e2) == 77
        pad15.append(e15)
        pad2.append(e2)
        raw2.append(len(t2(s, add_special_tokens=False)["input_ids"]))
        padoa.append(openai_frame(raw_all[i]))
    while len(blob) % 4:
        blob.append(0)
    n_long = sum(1 for r in raw_all if len(r) > 75)
    n_sd2_diff = sum(1 for i in range(n) if "!" in texts[i])
    print(f"{n} strings ({len(ids)} ids, {n_long} longer than 75 tokens), {len(pad_idx)} padded; "
          f"{n_sd2_diff} strings contain '!'")
    tensors = {
        "text_blob": np.frombuffer(bytes(blob), dtype="<i4").copy(),
        "text_off": np.array(text_off, np.int64),
        "ids": np.array(ids, np.int32),
        "ids_off": np.array(ids_off, np.int64),
        "pad_idx": np.array(pad_idx, np.int64),
        "pad_sd15": np.array(pad15, np.int32),
        "pad_sd2": np.array(pad2, np.int32),
        "raw_sd2": np.array(raw2, np.int32),
        "pad_openai": np.array(padoa, np.int32),
        "category": np.array(cats, np.int64),
    }
    common.save_golden(os.path.join(OUT, "corpus.safetensors"), tensors, SEED,
                       {"categories": ",".join(g for g, _ in groups), "n_strings": n})

    st, cl, dl = uprops()
    print(f"unicode table: {len(st)} runs")
    common.save_golden(os.path.join(OUT, "uprops.safetensors"),
                       {"start": st, "cls": cl, "ldelta": dl}, SEED,
                       {"unidata_version": unicodedata.unidata_version,
                        "regex_version": regex.__version__})
    check_utf8proc_nfc()


if __name__ == "__main__":
    main()
