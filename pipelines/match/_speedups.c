/* The scanner's per-candidate path in C: an optional accelerator.
 *
 * Everything here has a pure-Python twin that gives identical results (the
 * tests run both on the same inputs): Collector + tokens() is the twin of
 * Finder._find_hs's post-processing, Evaluator.evaluate() of the scanner's
 * canonical form + checksum + HMAC + fingerprint lookup. Python costs about
 * 7 microseconds per candidate on that path; this costs well under one.
 *
 * Nothing here keeps a token, a canonical form or a message after a call
 * returns: they live in stack buffers that are overwritten by the next
 * candidate. HMAC-SHA256 is OpenSSL's SHA-256 driven from precomputed inner
 * and outer states (RFC 2104), as pipelines/match/digest.py does with hashlib.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_CTX: the low-level API keeps states copyable */
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the fingerprint file is little-endian; other hosts use the Python path"
#endif

#define CANON_MAX 256 /* longer tokens go to the Python path */

/* ---- Collector: hyperscan's match handler, appending to C arrays ------------------------ */

typedef struct {
    int64_t kind, start, negend;
} Tok;

typedef struct {
    PyObject_HEAD
    uint32_t *ids;
    int64_t *from, *to;
    Py_ssize_t n, cap;
} Collector;

static void Collector_dealloc(Collector *self) {
    free(self->ids);
    free(self->from);
    free(self->to);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int grow(Collector *self) {
    Py_ssize_t cap = self->cap ? self->cap * 2 : 1024;
    uint32_t *ids = realloc(self->ids, cap * sizeof(uint32_t));
    if (!ids) return -1;
    self->ids = ids;
    int64_t *from = realloc(self->from, cap * sizeof(int64_t));
    if (!from) return -1;
    self->from = from;
    int64_t *to = realloc(self->to, cap * sizeof(int64_t));
    if (!to) return -1;
    self->to = to;
    self->cap = cap;
    return 0;
}

/* called as handler(id, from, to, flags, context) */
static PyObject *Collector_call(Collector *self, PyObject *args, PyObject *kwds) {
    if (!PyTuple_Check(args) || PyTuple_GET_SIZE(args) < 3) {
        PyErr_SetString(PyExc_TypeError, "Collector(id, from, to, ...)");
        return NULL;
    }
    unsigned long id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(args, 0));
    long long from = PyLong_AsLongLong(PyTuple_GET_ITEM(args, 1));
    long long to = PyLong_AsLongLong(PyTuple_GET_ITEM(args, 2));
    if (PyErr_Occurred()) return NULL;
    if (self->n == self->cap && grow(self) < 0) return PyErr_NoMemory();
    self->ids[self->n] = (uint32_t)id;
    self->from[self->n] = from;
    self->to[self->n] = to;
    self->n++;
    Py_RETURN_NONE;
}

static PyObject *Collector_clear(Collector *self, PyObject *unused) {
    self->n = 0;
    Py_RETURN_NONE;
}

static int cmp_tok(const void *a, const void *b) {
    const Tok *x = a, *y = b;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->negend != y->negend) return x->negend < y->negend ? -1 : 1;
    return 0;
}

static int cmp_start_kind(const void *a, const void *b) {
    const Tok *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return 0;
}

static int fw_alnum_at(const uint8_t *b, Py_ssize_t len, Py_ssize_t pos) {
    /* a full-width letter or digit starts at pos (pipelines.match.kinds.fullwidth_alnum_*) */
    if (pos < 0 || pos + 3 > len || b[pos] != 0xEF) return 0;
    uint8_t b1 = b[pos + 1], b2 = b[pos + 2];
    return (b1 == 0xBC && ((b2 >= 0x90 && b2 <= 0x99) || (b2 >= 0xA1 && b2 <= 0xBA))) ||
           (b1 == 0xBD && b2 >= 0x81 && b2 <= 0x9A);
}

static int closed_at(const uint8_t *b, Py_ssize_t end) {
    /* the token ends with ) ] or full-width ） ］ (pipelines.match.finder._closed) */
    uint8_t last = b[end - 1];
    return last == 0x29 || last == 0x5D ||
           ((last == 0x89 || last == 0xBD) && end >= 3 && b[end - 3] == 0xEF &&
            b[end - 2] == 0xBC);
}

/* tokens(buf, kind_of, neg_adj) -> (kinds, starts, ends): int64 arrays as bytes, sorted by
 * (start, kind). Per kind the longest token per start wins and overlapping later tokens
 * are dropped; full-width alphanumeric neighbours disqualify a token. */
static PyObject *Collector_tokens(Collector *self, PyObject *args) {
    Py_buffer buf, kind_of, neg_adj;
    if (!PyArg_ParseTuple(args, "y*y*y*", &buf, &kind_of, &neg_adj)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = self->n, m = 0;
    Tok *toks = malloc((n ? n : 1) * sizeof(Tok));
    if (!toks) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *b = buf.buf, *ko = kind_of.buf, *na = neg_adj.buf;
    Py_ssize_t len = buf.len;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t id = self->ids[i];
        if ((Py_ssize_t)id >= kind_of.len || (Py_ssize_t)id >= neg_adj.len) {
            PyErr_SetString(PyExc_ValueError, "expression id out of range");
            goto done;
        }
        toks[i].kind = ko[id];
        toks[i].start = self->from[i] + 1;
        toks[i].negend = (int64_t)na[id] - self->to[i];
    }
    qsort(toks, n, sizeof(Tok), cmp_tok);
    int64_t last_kind = -1, last_start = -1, last_end = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t k = toks[i].kind, s = toks[i].start, e = -toks[i].negend;
        if (k != last_kind) {
            last_kind = k;
            last_start = last_end = -1;
        }
        if (s == last_start || s < last_end) continue;
        if (s < 1 || e > len || e <= s) {
            PyErr_SetString(PyExc_ValueError, "match offsets outside the buffer");
            goto done;
        }
        if (b[s - 1] >= 0x80 && s >= 3 && fw_alnum_at(b, len, s - 3)) continue;
        if (e < len && b[e] == 0xEF && fw_alnum_at(b, len, e) && !closed_at(b, e)) continue;
        toks[m].kind = k;
        toks[m].start = s;
        toks[m].negend = e;
        m++;
        last_start = s;
        last_end = e;
    }
    qsort(toks, m, sizeof(Tok), cmp_start_kind);
    PyObject *ok = PyBytes_FromStringAndSize(NULL, m * 8);
    PyObject *os = PyBytes_FromStringAndSize(NULL, m * 8);
    PyObject *oe = PyBytes_FromStringAndSize(NULL, m * 8);
    if (ok && os && oe) {
        int64_t *pk = (int64_t *)PyBytes_AS_STRING(ok), *ps = (int64_t *)PyBytes_AS_STRING(os),
                *pe = (int64_t *)PyBytes_AS_STRING(oe);
        for (Py_ssize_t i = 0; i < m; i++) {
            pk[i] = toks[i].kind;
            ps[i] = toks[i].start;
            pe[i] = toks[i].negend;
        }
        result = PyTuple_Pack(3, ok, os, oe);
    }
    Py_XDECREF(ok);
    Py_XDECREF(os);
    Py_XDECREF(oe);
done:
    free(toks);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&kind_of);
    PyBuffer_Release(&neg_adj);
    return result;
}

static PyMethodDef Collector_methods[] = {
    {"clear", (PyCFunction)Collector_clear, METH_NOARGS, "Forget the collected matches."},
    {"tokens", (PyCFunction)Collector_tokens, METH_VARARGS,
     "tokens(buf, kind_of, neg_adj) -> (kinds, starts, ends) as int64 bytes."},
    {NULL}};

static PyTypeObject CollectorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pipelines.match._speedups.Collector",
    .tp_basicsize = sizeof(Collector),
    .tp_dealloc = (destructor)Collector_dealloc,
    .tp_call = (ternaryfunc)Collector_call,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A hyperscan match handler that appends (id, from, to) to C arrays.",
    .tp_methods = Collector_methods,
    .tp_new = PyType_GenericNew,
};

#ifdef __SSE2__
static inline __m128i le_u8(__m128i x, uint8_t k) { /* x <= k, unsigned, per byte */
    return _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8((char)k)), x);
}
#endif

typedef struct {
    int64_t *at;
    Py_ssize_t n, cap, limit;
} Starts;

/* append; -1 beyond the limit, -2 out of memory */
static int push_start(Starts *st, int64_t at) {
    if (st->n >= st->limit) return -1;
    if (st->n == st->cap) {
        Py_ssize_t cap = st->cap ? st->cap * 2 : 256;
        int64_t *grown = realloc(st->at, cap * sizeof(int64_t));
        if (!grown) return -2;
        st->at = grown;
        st->cap = cap;
    }
    st->at[st->n++] = at;
    return 0;
}

/* Starts of the full-width letters and digits in b[0:len]; 0, or push_start's error.
 * With SSE2, 16 positions are tested at once for all three bytes, without a branch on
 * the lead byte (Chinese text has a 0xEF, full-width punctuation, in about every other
 * block: a branch on it would be mispredicted half the time). The characters cannot
 * overlap, so testing every position finds each once. */
static int find_fullwidth(const uint8_t *b, Py_ssize_t len, Starts *st) {
    Py_ssize_t i = 0;
    int err;
#ifdef __SSE2__
    const __m128i ef = _mm_set1_epi8((char)0xEF), bc = _mm_set1_epi8((char)0xBC),
                  bd = _mm_set1_epi8((char)0xBD), d0 = _mm_set1_epi8((char)0x90),
                  u0 = _mm_set1_epi8((char)0xA1), l0 = _mm_set1_epi8((char)0x81);
    for (; i + 18 <= len; i += 16) {
        __m128i lead = _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(b + i)), ef);
        __m128i v1 = _mm_loadu_si128((const __m128i *)(b + i + 1));
        __m128i v2 = _mm_loadu_si128((const __m128i *)(b + i + 2));
        __m128i in_bc = _mm_and_si128(
            _mm_cmpeq_epi8(v1, bc),
            _mm_or_si128(le_u8(_mm_sub_epi8(v2, d0), 9), le_u8(_mm_sub_epi8(v2, u0), 25)));
        __m128i in_bd = _mm_and_si128(_mm_cmpeq_epi8(v1, bd), le_u8(_mm_sub_epi8(v2, l0), 25));
        int mask = _mm_movemask_epi8(_mm_and_si128(lead, _mm_or_si128(in_bc, in_bd)));
        while (mask) {
            if ((err = push_start(st, i + __builtin_ctz(mask))) < 0) return err;
            mask &= mask - 1;
        }
    }
#endif
    for (; i + 3 <= len; i++) {
        if (b[i] == 0xEF && fw_alnum_at(b, len, i) && (err = push_start(st, i)) < 0) return err;
    }
    return 0;
}

/* fullwidth_windows(buf, width, limit, coverage) -> (starts, windows) or None.
 * starts: of the full-width letters and digits (int64 bytes); windows: merged [max(0, p - width), min(len, p + 3 + width))
 * ranges around them, as a list of (start, end). None when there are more than `limit`
 * characters or the windows cover more than `coverage` bytes (one full pass is cheaper). */
static PyObject *fullwidth_windows(PyObject *module, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t width, coverage;
    Starts st = {0};
    if (!PyArg_ParseTuple(args, "y*nnn", &buf, &width, &st.limit, &coverage)) return NULL;
    PyObject *result = NULL, *starts = NULL, *windows = NULL;
    int err = find_fullwidth(buf.buf, buf.len, &st);
    if (err == -2) {
        PyErr_NoMemory();
        goto done;
    }
    if (err == -1) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    windows = PyList_New(0);
    if (!windows) goto done;
    const int64_t *out = st.at;
    Py_ssize_t n = st.n, covered = 0, a = -1, e = -1;
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_ssize_t lo = 0, hi = 0;
        if (i < n) {
            lo = out[i] - width < 0 ? 0 : out[i] - width;
            hi = out[i] + 3 + width > buf.len ? buf.len : out[i] + 3 + width;
            if (a >= 0 && lo <= e) { /* touches the open window: extend it */
                e = hi;
                continue;
            }
        }
        if (a >= 0) { /* close the open window */
            covered += e - a;
            PyObject *w = Py_BuildValue("(nn)", a, e);
            if (!w || PyList_Append(windows, w) < 0) {
                Py_XDECREF(w);
                goto done;
            }
            Py_DECREF(w);
        }
        a = lo;
        e = hi;
    }
    if (covered > coverage) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    starts = PyBytes_FromStringAndSize((const char *)st.at, st.n * 8);
    if (starts) result = PyTuple_Pack(2, starts, windows);
done:
    Py_XDECREF(starts);
    Py_XDECREF(windows);
    free(st.at);
    PyBuffer_Release(&buf);
    return result;
}

/* newlines_before(buf, positions) -> for each position, the number of b"\n" before it
 * (int64 bytes). Positions are expected in ascending order (counting carries on from
 * the previous one); a smaller one restarts the count from the buffer's start. */
static PyObject *newlines_before(PyObject *module, PyObject *args) {
    Py_buffer buf, pos;
    if (!PyArg_ParseTuple(args, "y*y*", &buf, &pos)) return NULL;
    Py_ssize_t n = pos.len / 8, at = 0;
    int64_t count = 0;
    const uint8_t *b = buf.buf;
    const int64_t *p = pos.buf;
    PyObject *out = PyBytes_FromStringAndSize(NULL, n * 8);
    if (!out) goto done;
    int64_t *o = (int64_t *)PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t to = p[i] < 0 ? 0 : (p[i] > buf.len ? buf.len : p[i]);
        if (to < at) {
            at = 0;
            count = 0;
        }
#ifdef __SSE2__
        /* per-byte counters (cmpeq gives -1 per newline) for up to 255 blocks, then
         * summed with SAD: no popcount per block */
        const __m128i nl = _mm_set1_epi8('\n'), zero = _mm_setzero_si128();
        while (at + 16 <= to) {
            __m128i acc = zero;
            for (int k = 0; k < 255 && at + 16 <= to; k++, at += 16)
                acc = _mm_sub_epi8(
                    acc, _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(b + at)), nl));
            __m128i sad = _mm_sad_epu8(acc, zero);
            count += _mm_cvtsi128_si32(sad) + _mm_extract_epi16(sad, 4);
        }
#endif
        for (; at < to; at++) count += b[at] == '\n';
        o[i] = count;
    }
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&pos);
    return out;
}

static PyMethodDef module_methods[] = {
    {"fullwidth_windows", fullwidth_windows, METH_VARARGS,
     "fullwidth_windows(buf, width, limit, coverage) -> (starts, windows) or None."},
    {"newlines_before", newlines_before, METH_VARARGS,
     "newlines_before(buf, positions) -> newline counts before each position (int64)."},
    {NULL}};

/* ---- Evaluator: canonical form, checksum, HMAC, lookup ---------------------------------- */

enum { CK_NONE = 0, CK_HKID = 1, CK_LUHN = 2, CK_MOD11 = 3 };
enum { ST_VALID = 1, ST_FOUND = 2, ST_PYTHON = 4 };

typedef struct {
    uint8_t prefix[64];
    Py_ssize_t prefix_len;
    int upper, checksum;
    uint8_t drop[128]; /* ASCII characters removed from the canonical form */
} Spec;

typedef struct {
    PyObject_HEAD
    SHA256_CTX inner, outer;
    Spec *specs;
    Py_ssize_t nspecs;
} Evaluator;

static void Evaluator_dealloc(Evaluator *self) {
    free(self->specs);
    OPENSSL_cleanse(&self->inner, sizeof(self->inner));
    OPENSSL_cleanse(&self->outer, sizeof(self->outer));
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int checksum_code(const char *name) {
    if (!strcmp(name, "none")) return CK_NONE;
    if (!strcmp(name, "hkid")) return CK_HKID;
    if (!strcmp(name, "luhn")) return CK_LUHN;
    if (!strcmp(name, "mod11")) return CK_MOD11;
    return -1;
}

/* Evaluator(key, specs): specs is a sequence of (prefix: bytes, upper: bool, remove: bytes,
 * checksum: str), one per kind index. */
static int Evaluator_init(Evaluator *self, PyObject *args, PyObject *kwds) {
    Py_buffer key;
    PyObject *specs;
    if (!PyArg_ParseTuple(args, "y*O", &key, &specs)) return -1;
    uint8_t k[64] = {0}, pad[64];
    if (key.len > 64) {
        SHA256(key.buf, key.len, k);
    } else {
        memcpy(k, key.buf, key.len);
    }
    PyBuffer_Release(&key);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x36;
    SHA256_Init(&self->inner);
    SHA256_Update(&self->inner, pad, 64);
    for (int i = 0; i < 64; i++) pad[i] = k[i] ^ 0x5C;
    SHA256_Init(&self->outer);
    SHA256_Update(&self->outer, pad, 64);
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));

    PyObject *seq = PySequence_Fast(specs, "specs must be a sequence");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    free(self->specs);
    self->specs = calloc(n ? n : 1, sizeof(Spec));
    self->nspecs = n;
    if (!self->specs) {
        Py_DECREF(seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer prefix, remove;
        int upper;
        const char *checksum;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "y*py*s", &prefix, &upper,
                              &remove, &checksum)) {
            Py_DECREF(seq);
            return -1;
        }
        Spec *sp = &self->specs[i];
        int ck = checksum_code(checksum);
        if (prefix.len > (Py_ssize_t)sizeof(sp->prefix) || ck < 0) {
            PyBuffer_Release(&prefix);
            PyBuffer_Release(&remove);
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "kind spec: prefix too long or unknown checksum");
            return -1;
        }
        memcpy(sp->prefix, prefix.buf, prefix.len);
        sp->prefix_len = prefix.len;
        sp->upper = upper;
        sp->checksum = ck;
        for (Py_ssize_t j = 0; j < remove.len; j++) {
            uint8_t c = ((uint8_t *)remove.buf)[j];
            if (c < 128) sp->drop[c] = 1;
        }
        PyBuffer_Release(&prefix);
        PyBuffer_Release(&remove);
    }
    Py_DECREF(seq);
    return 0;
}

/* The canonical form of a token (NFKC, upper-case, removals), for tokens made of ASCII and
 * the full-width letters, digits, brackets ( ) [ ], separators - /, ideographic space and
 * NBSP: exactly what
 * Kind.canonical_b gives for them. Returns the length, or -1 for anything else (the
 * caller's Python path handles it). */
static Py_ssize_t canonical(const uint8_t *t, Py_ssize_t len, const Spec *sp, uint8_t *out) {
    Py_ssize_t i = 0, o = 0;
    while (i < len) {
        uint8_t c = t[i], ch;
        if (c < 0x80) {
            ch = c;
            i++;
        } else if (c == 0xEF && i + 2 < len) {
            uint8_t b1 = t[i + 1], b2 = t[i + 2];
            if (b1 == 0xBC && b2 >= 0x90 && b2 <= 0x99)
                ch = '0' + (b2 - 0x90);
            else if (b1 == 0xBC && b2 >= 0xA1 && b2 <= 0xBA)
                ch = 'A' + (b2 - 0xA1);
            else if (b1 == 0xBD && b2 >= 0x81 && b2 <= 0x9A)
                ch = 'a' + (b2 - 0x81);
            else if (b1 == 0xBC && b2 == 0x88)
                ch = '(';
            else if (b1 == 0xBC && b2 == 0x89)
                ch = ')';
            else if (b1 == 0xBC && b2 == 0xBB)
                ch = '[';
            else if (b1 == 0xBC && b2 == 0xBD)
                ch = ']';
            else if (b1 == 0xBC && b2 == 0x8D)
                ch = '-';
            else if (b1 == 0xBC && b2 == 0x8F)
                ch = '/';
            else
                return -1;
            i += 3;
        } else if (c == 0xE3 && i + 2 < len && t[i + 1] == 0x80 && t[i + 2] == 0x80) {
            ch = ' ';
            i += 3;
        } else if (c == 0xC2 && i + 1 < len && t[i + 1] == 0xA0) {
            ch = ' ';
            i += 2;
        } else {
            return -1;
        }
        if (sp->upper && ch >= 'a' && ch <= 'z') ch -= 32;
        if (sp->drop[ch]) continue;
        if (o >= CANON_MAX) return -1;
        out[o++] = ch;
    }
    return o;
}

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }
static int is_upper(uint8_t c) { return c >= 'A' && c <= 'Z'; }

static int hkid_ok(const uint8_t *c, Py_ssize_t n) {
    int total;
    if (n == 8) {
        if (!is_upper(c[0])) return 0;
        total = 36 * 9 + 8 * (c[0] - 55);
    } else if (n == 9) {
        if (!is_upper(c[0]) || !is_upper(c[1])) return 0;
        total = 9 * (c[0] - 55) + 8 * (c[1] - 55);
    } else {
        return 0;
    }
    for (int j = 0; j < 6; j++) {
        uint8_t d = c[n - 7 + j];
        if (!is_digit(d)) return 0;
        total += (7 - j) * (d - '0');
    }
    return c[n - 1] == "0A987654321"[total % 11];
}

static int luhn_ok(const uint8_t *c, Py_ssize_t n) {
    int digits = 0, total = 0;
    for (Py_ssize_t i = 0; i < n; i++) digits += is_digit(c[i]);
    if (digits < 2 || !is_digit(c[n - 1])) return 0;
    int k = 0;
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        if (!is_digit(c[i])) continue;
        int d = c[i] - '0';
        if (k++ % 2 == 1) {
            d *= 2;
            if (d > 9) d -= 9;
        }
        total += d;
    }
    return total % 10 == 0;
}

static int mod11_ok(const uint8_t *c, Py_ssize_t n) {
    if (n < 2) return 0;
    long total = 0;
    int w = 2, body = 0;
    for (Py_ssize_t i = n - 2; i >= 0; i--) {
        if (!is_digit(c[i])) continue;
        total += (long)w++ * (c[i] - '0');
        body++;
    }
    if (!body) return 0;
    int want = (11 - total % 11) % 11;
    if (want == 10) return c[n - 1] == 'X' || c[n - 1] == 'A';
    return c[n - 1] == '0' + want;
}

static int checksum_ok(int ck, const uint8_t *c, Py_ssize_t n) {
    switch (ck) {
        case CK_HKID: return hkid_ok(c, n);
        case CK_LUHN: return luhn_ok(c, n);
        case CK_MOD11: return mod11_ok(c, n);
        default: return 1;
    }
}

/* first index i with d[i] >= q: interpolation steps (the digests are uniform HMAC output),
 * then binary search, so a skewed table costs at most a binary search */
static Py_ssize_t lower_bound(const uint64_t *d, Py_ssize_t n, uint64_t q) {
    Py_ssize_t lo = 0, hi = n;
    for (int step = 0; step < 4 && hi - lo > 32; step++) {
        uint64_t vlo = d[lo], vhi = d[hi - 1];
        if (q <= vlo) return lo;
        if (q > vhi) return hi;
        Py_ssize_t pos =
            lo + (Py_ssize_t)(((unsigned __int128)(q - vlo) * (uint64_t)(hi - 1 - lo)) /
                              (vhi - vlo));
        /* probe a small bracket around the guess to shrink the range from both sides */
        Py_ssize_t a = pos - 8 < lo ? lo : pos - 8, b = pos + 8 > hi - 1 ? hi - 1 : pos + 8;
        if (d[a] >= q) {
            hi = a;
        } else if (d[b] < q) {
            lo = b + 1;
        } else {
            lo = a + 1;
            hi = b;
        }
    }
    while (lo < hi) {
        Py_ssize_t mid = lo + (hi - lo) / 2;
        if (d[mid] < q)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* evaluate(buf, kinds, starts, ends, digests) -> (status, q, idx, canonical)
 * kinds/starts/ends: int64 arrays; digests: the fingerprint file's sorted uint64 digests.
 * status per candidate (uint8): 1 valid, 2 found, 4 leave to Python; q: the 64-bit digest
 * (uint64, 0 unless valid); idx: first fingerprint entry >= q, clipped (int64); canonical:
 * the canonical forms of the found candidates, in order (for their masks). */
static PyObject *Evaluator_evaluate(Evaluator *self, PyObject *args) {
    Py_buffer buf, kinds, starts, ends, digests;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*", &buf, &kinds, &starts, &ends, &digests))
        return NULL;
    PyObject *result = NULL, *ost = NULL, *oq = NULL, *oi = NULL, *canons = NULL;
    Py_ssize_t n = kinds.len / 8;
    if (starts.len != kinds.len || ends.len != kinds.len) {
        PyErr_SetString(PyExc_ValueError, "kinds, starts and ends differ in length");
        goto done;
    }
    ost = PyBytes_FromStringAndSize(NULL, n);
    oq = PyBytes_FromStringAndSize(NULL, n * 8);
    oi = PyBytes_FromStringAndSize(NULL, n * 8);
    canons = PyList_New(0);
    if (!ost || !oq || !oi || !canons) goto done;
    uint8_t *st = (uint8_t *)PyBytes_AS_STRING(ost);
    uint64_t *qs = (uint64_t *)PyBytes_AS_STRING(oq);
    int64_t *ix = (int64_t *)PyBytes_AS_STRING(oi);
    const int64_t *pk = kinds.buf, *ps = starts.buf, *pe = ends.buf;
    const uint64_t *d = digests.buf;
    Py_ssize_t nd = digests.len / 8;
    const uint8_t *b = buf.buf;
    uint8_t canon[CANON_MAX], ih[SHA256_DIGEST_LENGTH], oh[SHA256_DIGEST_LENGTH];
    SHA256_CTX c;
    for (Py_ssize_t i = 0; i < n; i++) {
        st[i] = 0;
        qs[i] = 0;
        ix[i] = 0;
        int64_t k = pk[i], s = ps[i], e = pe[i];
        if (k < 0 || k >= self->nspecs || s < 0 || e > buf.len || e < s) {
            PyErr_SetString(PyExc_ValueError, "candidate outside the buffer or unknown kind");
            goto done;
        }
        const Spec *sp = &self->specs[k];
        Py_ssize_t cl = canonical(b + s, e - s, sp, canon);
        if (cl < 0) {
            st[i] = ST_PYTHON;
            continue;
        }
        if (!checksum_ok(sp->checksum, canon, cl)) continue;
        memcpy(&c, &self->inner, sizeof(c));
        SHA256_Update(&c, sp->prefix, sp->prefix_len);
        SHA256_Update(&c, canon, cl);
        SHA256_Final(ih, &c);
        memcpy(&c, &self->outer, sizeof(c));
        SHA256_Update(&c, ih, sizeof(ih));
        SHA256_Final(oh, &c);
        uint64_t q = 0;
        for (int j = 0; j < 8; j++) q = (q << 8) | oh[j];
        qs[i] = q;
        st[i] = ST_VALID;
    }
    /* lookups in a second pass: the table is larger than the caches, so the first probe
     * of each lookup (the interpolated position) is requested a few candidates ahead */
    if (nd) {
        const Py_ssize_t ahead = 6;
        const uint64_t d0 = d[0], dn = d[nd - 1];
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t k = i + ahead;
            if (k < n && (st[k] & ST_VALID) && qs[k] > d0 && qs[k] < dn)
                __builtin_prefetch(
                    &d[(Py_ssize_t)(((unsigned __int128)(qs[k] - d0) * (uint64_t)(nd - 1)) /
                                    (dn - d0))]);
            if (!(st[i] & ST_VALID)) continue;
            Py_ssize_t at = lower_bound(d, nd, qs[i]);
            if (at >= nd) at = nd - 1;
            ix[i] = at;
            if (d[at] != qs[i]) continue;
            st[i] |= ST_FOUND;
            Py_ssize_t cl = canonical(b + ps[i], pe[i] - ps[i], &self->specs[pk[i]], canon);
            PyObject *cf = PyBytes_FromStringAndSize((const char *)canon, cl);
            if (!cf || PyList_Append(canons, cf) < 0) {
                Py_XDECREF(cf);
                goto done;
            }
            Py_DECREF(cf);
        }
    }
    result = PyTuple_Pack(4, ost, oq, oi, canons);
done:
    OPENSSL_cleanse(canon, sizeof(canon));
    OPENSSL_cleanse(&c, sizeof(c));
    Py_XDECREF(canons);
    Py_XDECREF(ost);
    Py_XDECREF(oq);
    Py_XDECREF(oi);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&kinds);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&digests);
    return result;
}

static PyMethodDef Evaluator_methods[] = {
    {"evaluate", (PyCFunction)Evaluator_evaluate, METH_VARARGS,
     "evaluate(buf, kinds, starts, ends, digests) -> (status, q, idx, canonical of found)."},
    {NULL}};

static PyTypeObject EvaluatorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "pipelines.match._speedups.Evaluator",
    .tp_basicsize = sizeof(Evaluator),
    .tp_dealloc = (destructor)Evaluator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Evaluator(key, specs): canonical form, checksum, keyed digest and lookup.",
    .tp_methods = Evaluator_methods,
    .tp_init = (initproc)Evaluator_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_speedups",
    .m_doc = "The scanner's per-candidate path in C (optional; pure-Python twins exist).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void) {
    if (PyType_Ready(&CollectorType) < 0 || PyType_Ready(&EvaluatorType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&CollectorType);
    if (PyModule_AddObject(m, "Collector", (PyObject *)&CollectorType) < 0) return NULL;
    Py_INCREF(&EvaluatorType);
    if (PyModule_AddObject(m, "Evaluator", (PyObject *)&EvaluatorType) < 0) return NULL;
    return m;
}
