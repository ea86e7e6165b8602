/*
 * tokenizer.h - the CLIP byte-level BPE tokenizer of SD1.x text encoders.
 *
 * Produces exactly the ids of transformers' slow CLIPTokenizer (4.45.1) when
 * ftfy is not installed (docs/numerics.md §2), the path diffusers takes:
 *   1. added/special tokens (<|startoftext|>, <|endoftext|>, the pad token,
 *      tokenizer_config's added_tokens_decoder) are split out of the raw text
 *      first and map straight to their ids;
 *   2. each other span is cleaned like BasicTokenizer(strip_accents=False,
 *      do_split_on_punc=False): NUL, U+FFFD and control/format/unassigned
 *      characters dropped, whitespace to spaces, spaces around CJK ideographs,
 *      NFC, split on whitespace, Python str.lower() per word (U+0130 -> "i̇",
 *      Greek final sigma);
 *   3. pieces of the regex <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|
 *      'm|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ (IGNORECASE, as Python's
 *      `regex` module applies it);
 *   4. UTF-8 bytes -> byte-to-unicode symbols, the last one with "</w>", BPE
 *      by merge rank, symbols -> ids (unknown symbols -> the unk id).
 * Sequences: [BOS] + ids[:max_len-2] + [EOS], padded to max_len (77) with the
 * pad id (49407 for SD1.5, 0 = "!" for SD2-style tokenizers), as
 * tokenizer(text, padding="max_length", truncation=True) gives; or OpenAI's
 * clip.tokenize framing (pad 0; overflow keeps the first 77, last = EOT).
 *
 * Text is UTF-8; invalid UTF-8 is an LMX_ERR_ARG naming the byte offset. The
 * messages do not say which text it was: the caller prefixes that ("prompt: ").
 * Lengths: `len` < 0 means NUL-terminated; texts longer than TOK_MAX_TEXT
 * bytes are refused (BPE is quadratic in the length of a single word).
 *
 * A loaded tokenizer is read-only: any number of threads may encode with it
 * at once. Encoding allocates only per-call scratch memory.
 *
 *     tok_tokenizer *tok;
 *     if (tok_load_dir(&tok, "model/tokenizer") != LMX_OK) ...lmx_errmsg()...
 *     int64_t ids[TOK_CONTEXT];
 *     int n_raw;
 *     tok_encode_padded(tok, prompt, -1, ids, &n_raw);
 *     if (n_raw > tok_max_length(tok) - 2) {
 *         char *lost; int partial;
 *         tok_dropped_text(tok, prompt, -1, &lost, &partial);
 *         lmx_warn("prompt truncated, dropped: %s", lost);
 *         lmx_free(lost);
 *     }
 *     tok_free(tok);
 */
#ifndef LMX_TOKENIZER_H
#define LMX_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define TOK_CONTEXT 77              /* CLIP's context: BOS + 75 tokens + EOS        */
#define TOK_MAX_TEXT (256 * 1024)   /* longest text accepted, bytes                  */
#define TOK_BUNDLED_MERGES "clip/bpe_simple_vocab_16e6.txt.gz"  /* under the data dir */

typedef struct tok_tokenizer tok_tokenizer;

/* ---- loading ---- */

/* A diffusers `tokenizer/` folder: vocab.json and merges.txt (required),
 * special_tokens_map.json and tokenizer_config.json (optional; the map wins
 * over the config, as in transformers' from_pretrained). Reads bos/eos/unk/
 * pad tokens (a string or {"content": ...}), added_tokens_decoder and
 * model_max_length (2..77; absent or transformers' "very large" sentinel
 * gives 77). Bad files are LMX_ERR_IO/LMX_ERR_FORMAT naming the file and,
 * for merges.txt, the line; single_word added tokens and added tokens that
 * are not in vocab.json are LMX_ERR_UNSUPPORTED. */
lmx_status tok_load_dir(tok_tokenizer **out, const char *dir);
/* The same with explicit paths; either JSON config may be NULL. */
lmx_status tok_load_files(tok_tokenizer **out, const char *vocab_json, const char *merges_txt,
                          const char *special_tokens_map_json, const char *tokenizer_config_json);
/* OpenAI's bpe_simple_vocab_16e6.txt.gz found with lmx_data_find (for
 * single-file checkpoints): the same 49,408-entry table as SD1.5's folder,
 * pad = <|endoftext|>, max length 77. */
lmx_status tok_load_bundled(tok_tokenizer **out);
/* The same from an explicit .gz path. */
lmx_status tok_load_merges_gz(tok_tokenizer **out, const char *gz_path);
void tok_free(tok_tokenizer *t); /* NULL is a no-op */

/* ---- properties ---- */

int tok_n_vocab(const tok_tokenizer *t);     /* 49408 for CLIP                      */
int tok_max_length(const tok_tokenizer *t);  /* padded length, 77 unless configured */
int tok_bos_id(const tok_tokenizer *t);      /* 49406                               */
int tok_eos_id(const tok_tokenizer *t);      /* 49407                               */
int tok_pad_id(const tok_tokenizer *t);      /* 49407 (SD1.5) or 0 (SD2)            */
int tok_unk_id(const tok_tokenizer *t);      /* 49407                               */
/* The vocabulary entry of `id` as stored ("gum</w>"; non-ASCII bytes appear
 * as their byte-to-unicode characters), NULL when out of range. */
const char *tok_token_str(const tok_tokenizer *t, int id);
/* Symbol -> id, or -1 when `s` is not in the vocabulary. */
int tok_token_id(const tok_tokenizer *t, const char *s);

/* ---- encoding ---- */

/* Raw BPE ids (no BOS/EOS), any length: *ids is lmx_malloc'd (free with
 * lmx_free; NULL when *n == 0). */
lmx_status tok_encode(const tok_tokenizer *t, const char *text, ptrdiff_t len, int32_t **ids, int *n);
/* out[tok_max_length(t)] = [BOS] + ids[:max-2] + [EOS] + pad. *n_raw (may be
 * NULL) = the number of raw BPE ids, so n_raw > max-2 means truncation. */
lmx_status tok_encode_padded(const tok_tokenizer *t, const char *text, ptrdiff_t len, int64_t *out,
                             int *n_raw);
/* OpenAI clip.tokenize(text, truncate=True) framing over the same BPE ids:
 * out[77] = [BOS] + ids + [EOS] zero-padded; when that is longer than 77 the
 * first 77 are kept and the last is set to EOS. (OpenAI's own clean-up runs
 * ftfy and html.unescape; for ASCII text without entities the ids agree.) */
lmx_status tok_encode_openai(const tok_tokenizer *t, const char *text, ptrdiff_t len,
                             int64_t out[TOK_CONTEXT], int *n_raw);
/* For a truncation warning: the original text from the regex piece that
 * holds the first id tok_encode_padded drops (from the start of its
 * whitespace-separated word instead when NFC or lower-casing changed that
 * word's characters) to the end of the last word that produced ids;
 * lmx_malloc'd, NULL when nothing is dropped. *partial (may be NULL) = 1
 * when that piece also kept ids ("chewing" -> "chew" kept, "ing" dropped).
 * E.g. SD1.5 reality negative prompt -> ", mutation, deformed, ..., long neck". */
lmx_status tok_dropped_text(const tok_tokenizer *t, const char *text, ptrdiff_t len, char **dropped,
                            int *partial);
/* Ids back to text, like CLIPTokenizer.convert_tokens_to_string: symbols
 * joined, bytes restored, "</w>" -> " ", stripped; invalid UTF-8 -> U+FFFD.
 * For messages; *out is lmx_malloc'd. */
lmx_status tok_decode(const tok_tokenizer *t, const int32_t *ids, int n, char **out);

/* ---- exposed for tests ----
 * How the clean-up, the regex and str.lower() see one code point; the unit
 * test compares every code point with Python 3.11 (Unicode 14.0) and the
 * `regex` module (tests/fixtures/tokenizer/uprops.safetensors). */
enum {
    TOK_U_KEEP = 0, TOK_U_DROP = 1, TOK_U_SPACE = 2, TOK_U_CJK = 3, TOK_U_SEP = 4, /* bits 0-2 */
    TOK_U_RE_L = 1 << 3, TOK_U_RE_N = 2 << 3, TOK_U_RE_O = 3 << 3,                /* bits 3-4 */
    TOK_U_CASED = 1 << 5, TOK_U_CASE_IGNORABLE = 2 << 5,                           /* bits 5-6 */
};
int tok_uclass(uint32_t cp);
/* Python's c.lower() when it is one code point; U+0130 (-> "i\u0307") gives 0. */
uint32_t tok_ulower(uint32_t cp);

#endif /* LMX_TOKENIZER_H */
