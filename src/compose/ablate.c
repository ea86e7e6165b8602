/*
 * ablate.c - the strings of the prompt-aware weights: PAW's ablated prompt
 * P \ i and PTW's trigger string (docs/methods.md §7.2-7.3, test
 * vectors §10.4), reproducing the reference code's Python `re` calls:
 *
 *     for t in triggers_i:
 *         p = re.sub(r"\b" + re.escape(t) + r"\b", "", p, flags=re.IGNORECASE)
 *     p = re.sub(r"\s*,\s*,\s*", ", ", p)
 *     p = re.sub(r"\s+", " ", p).strip()
 *     p = p.strip(",").strip()
 *
 * Semantics of Python 3.11's sre for str patterns, on code points:
 *   - \b: a position where exactly one neighbour is a word character
 *     (str.isalnum() or '_': Unicode letters and numbers), never inside an
 *     empty string;
 *   - IGNORECASE of an escaped literal: a text character c matches pattern
 *     character p when lower(c) == lower(p) (the simple lower-case mapping)
 *     or lower(c) is one of sre's extra equivalents of lower(p)
 *     (re/_casefix.py: i/ı, s/ſ, µ/μ, ...);
 *   - \s and str.strip(): str.isspace() characters;
 *   - re.sub scans the original string left to right, non-overlapping.
 * The cleanup is kept literal, quirks included (", ," segments where a
 * removed LoRA stood; a trailing "," after the last LoRA).
 */
#include <string.h>

#include "compose/compose.h"

/* ---- UTF-8 <-> code points ---------------------------------------------- */

/* Strict decoding (no overlongs, surrogates or values over U+10FFFF). */
static lmx_status decode(const char *s, const char *what, uint32_t **out, size_t *n_out) {
    size_t len = strlen(s), n = 0;
    uint32_t *v = lmx_malloc(sizeof *v * (len + 1));
    if (!v) return lmx_err(LMX_ERR_NOMEM, "%s: out of memory", what);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        uint32_t c = p[i];
        int k = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (k < 0 || i + (size_t)k >= len) goto bad;
        if (k) c &= 0x3F >> k;
        for (int j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) goto bad;
            c = (c << 6) | (p[i + j] & 0x3F);
        }
        static const uint32_t MIN[4] = {0, 0x80, 0x800, 0x10000};
        if (c < MIN[k] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) goto bad;
        v[n++] = c;
        i += (size_t)k + 1;
        continue;
    bad:
        lmx_free(v);
        return lmx_err(LMX_ERR_ARG, "%s: invalid UTF-8 at byte %zu", what, i);
    }
    *out = v;
    *n_out = n;
    return LMX_OK;
}

static char *encode(const uint32_t *v, size_t n) {
    char *s = lmx_malloc(4 * n + 1), *d = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = v[i];
        if (c < 0x80) {
            *d++ = (char)c;
        } else if (c < 0x800) {
            *d++ = (char)(0xC0 | (c >> 6));
            *d++ = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            *d++ = (char)(0xE0 | (c >> 12));
            *d++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *d++ = (char)(0x80 | (c & 0x3F));
        } else {
            *d++ = (char)(0xF0 | (c >> 18));
            *d++ = (char)(0x80 | ((c >> 12) & 0x3F));
            *d++ = (char)(0x80 | ((c >> 6) & 0x3F));
            *d++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *d = 0;
    return s;
}

lmx_status compose_check_utf8(const char *s, const char *what) {
    uint32_t *v = NULL;
    size_t n = 0;
    lmx_status st = decode(s, what, &v, &n);
    lmx_free(v);
    return st;
}

size_t compose_utf8_len(const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

/* ---- character classes, as sre sees them --------------------------------- */

static int is_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
           c == 0x3000;
}

static int is_word(uint32_t c) {
    if (c < 0x80)
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
    int re = tok_uclass(c) & (3 << 3);
    return re == TOK_U_RE_L || re == TOK_U_RE_N;
}

/* sre_lower_unicode: the simple lower-case mapping (U+0130 -> 'i'). */
static uint32_t lower(uint32_t c) {
    if (c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    if (c == 0x130) return 'i';
    uint32_t l = tok_ulower(c);
    return l ? l : c;
}

/* re/_casefix.py _EXTRA_CASES (Python 3.11): lower-case characters that
 * IGNORECASE also treats as equal; each row lists a class. */
static const uint32_t EXTRA[][3] = {
    {0x69, 0x131, 0},      {0x73, 0x17F, 0},      {0xB5, 0x3BC, 0},      {0x345, 0x3B9, 0x1FBE},
    {0x390, 0x1FD3, 0},    {0x3B0, 0x1FE3, 0},    {0x3B2, 0x3D0, 0},     {0x3B5, 0x3F5, 0},
    {0x3B8, 0x3D1, 0},     {0x3BA, 0x3F0, 0},     {0x3C0, 0x3D6, 0},     {0x3C1, 0x3F1, 0},
    {0x3C2, 0x3C3, 0},     {0x3C6, 0x3D5, 0},     {0x432, 0x1C80, 0},    {0x434, 0x1C81, 0},
    {0x43E, 0x1C82, 0},    {0x441, 0x1C83, 0},    {0x442, 0x1C84, 0x1C85}, {0x44A, 0x1C86, 0},
    {0x463, 0x1C87, 0},    {0x1C88, 0xA64B, 0},   {0x1E61, 0x1E9B, 0},   {0xFB05, 0xFB06, 0},
};

static int in_row(const uint32_t *row, uint32_t c) { return row[0] == c || row[1] == c || (row[2] && row[2] == c); }

static int char_eq(uint32_t text, uint32_t pat) {
    uint32_t a = lower(text), b = lower(pat);
    if (a == b) return 1;
    for (size_t r = 0; r < LMX_ARRAY_LEN(EXTRA); r++)
        if (in_row(EXTRA[r], b)) return in_row(EXTRA[r], a);
    return 0;
}

static int boundary(const uint32_t *s, size_t n, size_t i) {
    if (n == 0) return 0;
    int before = i > 0 && is_word(s[i - 1]);
    int after = i < n && is_word(s[i]);
    return before != after;
}

/* ---- the substitutions ------------------------------------------------------ */

/* out[] (capacity n) = s with every \b t \b removed; returns the new length. */
static size_t remove_cp(const uint32_t *s, size_t n, const uint32_t *t, size_t m, uint32_t *out) {
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        int hit = m > 0 && i + m <= n && boundary(s, n, i) && boundary(s, n, i + m);
        for (size_t q = 0; hit && q < m; q++) hit = char_eq(s[i + q], t[q]);
        if (hit) {
            i += m;
        } else {
            out[j++] = s[i++];
        }
    }
    return j;
}

static size_t skip_space(const uint32_t *s, size_t n, size_t i) {
    while (i < n && is_space(s[i])) i++;
    return i;
}

/* re.sub(r"\s*,\s*,\s*", ", ", s): one left-to-right pass (the output can
 * exceed the input by one character per match at most: ",," -> ", "). A
 * failed attempt at i fails at every start up to the first comma too, so
 * those characters are copied at once (linear time on long space runs). */
static size_t double_comma(const uint32_t *s, size_t n, uint32_t *out) {
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        size_t j0 = skip_space(s, n, i);
        if (j0 < n && s[j0] == ',') {
            size_t j1 = skip_space(s, n, j0 + 1);
            if (j1 < n && s[j1] == ',') {
                out[j++] = ',';
                out[j++] = ' ';
                i = skip_space(s, n, j1 + 1);
                continue;
            }
        }
        size_t stop = j0 < n ? j0 + 1 : n;
        while (i < stop) out[j++] = s[i++];
    }
    return j;
}

/* re.sub(r"\s+", " ", s) in place. */
static size_t collapse_space(uint32_t *s, size_t n) {
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        if (is_space(s[i])) {
            s[j++] = ' ';
            i = skip_space(s, n, i);
        } else {
            s[j++] = s[i++];
        }
    }
    return j;
}

/* strip(): whitespace (comma = 0) or ',' (comma = 1) at both ends; returns the
 * new start, *n the new length. */
static uint32_t *strip(uint32_t *s, size_t *n, int comma) {
    size_t a = 0, b = *n;
    while (a < b && (comma ? s[a] == ',' : is_space(s[a]))) a++;
    while (b > a && (comma ? s[b - 1] == ',' : is_space(s[b - 1]))) b--;
    *n = b - a;
    return s + a;
}

lmx_status compose_remove_phrase(const char *s, const char *t, char **out) {
    *out = NULL;
    uint32_t *sv = NULL, *tv = NULL, *r = NULL;
    size_t n = 0, m = 0;
    lmx_status st = decode(s, "prompt", &sv, &n);
    if (st == LMX_OK) st = decode(t, "trigger", &tv, &m);
    if (st != LMX_OK) goto done;
    r = lmx_malloc(sizeof *r * (n + 1));
    if (!r) {
        st = lmx_err(LMX_ERR_NOMEM, "prompt ablation: out of memory");
        goto done;
    }
    *out = encode(r, remove_cp(sv, n, tv, m, r));
    if (!*out) st = lmx_err(LMX_ERR_NOMEM, "prompt ablation: out of memory");
done:
    lmx_free(sv);
    lmx_free(tv);
    lmx_free(r);
    return st;
}

lmx_status compose_ablate(const char *prompt, const char *const *triggers, int n_triggers, char **out) {
    *out = NULL;
    uint32_t *p = NULL, *tv = NULL, *tmp = NULL;
    size_t n = 0, m = 0;
    if (!prompt) return lmx_err(LMX_ERR_ARG, "prompt ablation: no prompt");
    lmx_status st = decode(prompt, "prompt", &p, &n);
    if (st != LMX_OK) return st;
    tmp = lmx_malloc(sizeof *tmp * (2 * n + 2));
    if (!tmp) {
        st = lmx_err(LMX_ERR_NOMEM, "prompt ablation: out of memory");
        goto done;
    }
    for (int i = 0; i < n_triggers; i++) {
        if (!triggers[i]) {
            st = lmx_err(LMX_ERR_ARG, "prompt ablation: trigger %d is NULL", i);
            goto done;
        }
        st = decode(triggers[i], "trigger", &tv, &m);
        if (st != LMX_OK) goto done;
        n = remove_cp(p, n, tv, m, tmp);
        memcpy(p, tmp, sizeof *p * n);
        lmx_free(tv);
        tv = NULL;
    }
    n = double_comma(p, n, tmp);
    n = collapse_space(tmp, n);
    uint32_t *q = strip(tmp, &n, 0);
    q = strip(q, &n, 1);
    q = strip(q, &n, 0);
    *out = encode(q, n);
    if (!*out) st = lmx_err(LMX_ERR_NOMEM, "prompt ablation: out of memory");
done:
    lmx_free(p);
    lmx_free(tv);
    lmx_free(tmp);
    return st;
}

lmx_status compose_trigger_string(const char *const *triggers, int n_triggers, char **out) {
    size_t len = 1;
    for (int i = 0; i < n_triggers; i++) {
        if (!triggers[i]) return lmx_err(LMX_ERR_ARG, "trigger string: trigger %d is NULL", i);
        len += strlen(triggers[i]) + 2;
    }
    char *s = lmx_malloc(len), *d = s;
    if (!s) return lmx_err(LMX_ERR_NOMEM, "trigger string: out of memory");
    for (int i = 0; i < n_triggers; i++) {
        if (!*triggers[i]) continue;
        if (d != s) {
            *d++ = ',';
            *d++ = ' ';
        }
        size_t l = strlen(triggers[i]);
        memcpy(d, triggers[i], l);
        d += l;
    }
    *d = 0;
    *out = s;
    return LMX_OK;
}
