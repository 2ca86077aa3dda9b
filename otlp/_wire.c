/*
 * otlp._wire: a compiled OTLP protobuf decoder writing Arrow buffers directly.
 *
 * Why: upb parses a 512-span request in ~0.7 us/span, but reading the parsed message from
 * Python costs ~0.35 us per attribute, so a Python decoder bottoms out near 5 us/span. This
 * module reads the wire format once and appends every field straight into the columns of
 * otlp/batch.py, then hands them to pyarrow through the Arrow C data interface (no copy).
 *
 * Contract with otlp/decode.py: for any input, decode_*() either returns the columns the
 * Python decoder would produce, or None, meaning "let the Python decoder judge this request".
 * None is returned for every malformed input (the Python decoder then raises its error) and
 * for valid but unusual encodings whose semantics are upb's business (a oneof or an AnyValue
 * set twice, groups, metric data switching type, non-canonical nested values, deep nesting).
 * So this decoder may be stricter than the Python one, never more lenient; tests compare the
 * two on generated, mutated and random inputs.
 *
 * Layout: wire reading, UTF-8, JSON rendering of nested values, column builders, one parse
 * function per message type, then the export of the columns as ArrowArray trees whose
 * shapes follow the schemas in otlp/batch.py (pyarrow checks them on import).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef WIRE_SOURCE_HASH
#define WIRE_SOURCE_HASH "unknown"
#endif

/* ---------------------------------------------------------------------------------------
 * Arrow C data interface: this struct is Arrow's stable ABI and is meant to be copied.
 */
#ifndef ARROW_C_DATA_INTERFACE
#define ARROW_C_DATA_INTERFACE
struct ArrowArray {
    int64_t length;
    int64_t null_count;
    int64_t offset;
    int64_t n_buffers;
    int64_t n_children;
    const void **buffers;
    struct ArrowArray **children;
    struct ArrowArray *dictionary;
    void (*release)(struct ArrowArray *);
    void *private_data;
};
#endif

/* Results of every parse step. BAD: defer the request to the Python decoder. */
enum { OK = 0, BAD = 1, NOMEM = 2 };

/* The source line that last deferred a request (diagnostics: _wire.last_deferral()) */
static int deferral_line;
static inline int defer_at(int line)
{
    deferral_line = line;
    return BAD;
}
#define DEFER defer_at(__LINE__)
#define TRY(expr)                  \
    do {                           \
        int rc_ = (expr);          \
        if (rc_) return rc_;       \
    } while (0)

/* otlp/batch.py V_* (AnyValue kinds) and M_* (metric data kinds) */
enum { V_EMPTY, V_STRING, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES };
enum { M_EMPTY, M_GAUGE, M_SUM, M_HISTOGRAM, M_EXPONENTIAL_HISTOGRAM, M_SUMMARY };
/* NumberDataPoint / Exemplar value kinds (N_*) */
enum { N_NONE, N_DOUBLE, N_INT };

/* Nested arrays/kvlists deeper than this go to the Python decoder (upb's own limit is 100
 * messages; 32 levels of AnyValue stay well inside it). */
#define MAX_DEPTH 32

/* ---------------------------------------------------------------------------------------
 * Growable buffers and columns
 */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} Buf;

static int buf_grow(Buf *b, size_t extra)
{
    size_t need = b->n + extra, cap = b->cap ? b->cap : 64;
    if (need < b->n) return NOMEM;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) return NOMEM;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) return NOMEM;
    b->p = p;
    b->cap = cap;
    return OK;
}

static inline int buf_put(Buf *b, const void *src, size_t n)
{
    if (b->cap - b->n < n) TRY(buf_grow(b, n));
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
    return OK;
}

static inline int buf_lit(Buf *b, const char *s) { return buf_put(b, s, strlen(s)); }
static inline int buf_ch(Buf *b, char c) { return buf_put(b, &c, 1); }

/*
 * One Arrow column under construction. Fixed-width values and string bytes go to `data`
 * (booleans as one byte each, packed at export), int32 offsets of strings, binaries and lists
 * to `off` (the leading 0 is added lazily), one validity byte per row to `valid` for nullable
 * columns. Structs below hold nothing but Col members, so a whole set of columns is freed as
 * an array of Col (reset_cols).
 */
typedef struct {
    Buf data, off, valid;
    int64_t nulls;
} Col;

#define ROWS(col, width) ((int64_t)((col).data.n / (width)))

static inline int col_u8(Col *c, uint8_t v) { return buf_put(&c->data, &v, 1); }
static inline int col_i8(Col *c, int8_t v) { return buf_put(&c->data, &v, 1); }
static inline int col_i32(Col *c, int32_t v) { return buf_put(&c->data, &v, 4); }
static inline int col_u32(Col *c, uint32_t v) { return buf_put(&c->data, &v, 4); }
static inline int col_u64(Col *c, uint64_t v) { return buf_put(&c->data, &v, 8); }
static inline int col_i64(Col *c, int64_t v) { return buf_put(&c->data, &v, 8); }
static inline int col_f64(Col *c, double v) { return buf_put(&c->data, &v, 8); }

static inline int col_valid(Col *c, int valid)
{
    if (!valid) c->nulls++;
    uint8_t v = (uint8_t)(valid != 0);
    return buf_put(&c->valid, &v, 1);
}

/* Appends an int32 offset; a column beyond 2 GiB is left to the Python decoder to report. */
static inline int off_push(Col *c, uint64_t value)
{
    if (!c->off.n) {
        int32_t zero = 0;
        TRY(buf_put(&c->off, &zero, 4));
    }
    if (value > INT32_MAX) return DEFER;
    int32_t o = (int32_t)value;
    return buf_put(&c->off, &o, 4);
}

/* Closes a string/binary row whose bytes were appended to c->data. */
static inline int col_end(Col *c) { return off_push(c, c->data.n); }

static inline int col_str(Col *c, const uint8_t *s, size_t n)
{
    TRY(buf_put(&c->data, s, n));
    return col_end(c);
}

typedef struct {
    const uint8_t *p;
    size_t n;
} Bytes;

static const uint8_t EMPTY[1] = {0};
#define NO_BYTES ((Bytes){EMPTY, 0})

static inline int col_bytes(Col *c, Bytes b) { return col_str(c, b.p, b.n); }

/* rows of a string column (which has no fixed-width data to count) */
static inline int64_t string_rows(const Col *c) { return c->off.n ? (int64_t)c->off.n / 4 - 1 : 0; }

/* trace/span ids: fixed-size binary, empty -> null, any other size -> BAD (the Python
 * decoder names the field in its error) */
static int col_id(Col *c, Bytes b, size_t width)
{
    static const uint8_t zeros[16] = {0};
    if (b.n == 0) {
        TRY(buf_put(&c->data, zeros, width));
        return col_valid(c, 0);
    }
    if (b.n != width) return DEFER;
    TRY(buf_put(&c->data, b.p, width));
    return col_valid(c, 1);
}

/* VALUE struct columns (an AnyValue), validity derived from `type` at export */
typedef struct {
    Col type, str, i, d, b, bin;
} Values;

/* ATTRIBUTES: per owner a list of ATTRIBUTE structs (key + VALUE); `lists` holds the
 * owners' list offsets into the KeyValue rows */
typedef struct {
    Col key;
    Values v;
    Col lists;
} Attrs;

#define VALUE_ROWS(values) ROWS((values).type, 1)

/* The largest sizes of the last request, read by the receiver's limits (otlp/limits.py) so
 * that it need not scan the columns again: _wire.last_sizes() */
static struct {
    uint64_t list;   /* attributes in one list */
    uint64_t key;    /* bytes of an attribute key */
    uint64_t value;  /* bytes of a value (string, bytes, an array's or kvlist's encoding/JSON) */
    uint64_t nested; /* bytes of an array's or kvlist's encoding */
} sizes;

#define GROW(field, n)                                                                        \
    do {                                                                                      \
        uint64_t n_ = (uint64_t)(n);                                                          \
        if (n_ > sizes.field) sizes.field = n_;                                               \
    } while (0)

static inline int attrs_close(Attrs *a)
{
    int64_t rows = VALUE_ROWS(a->v);
    int64_t start = a->lists.off.n ? ((const int32_t *)a->lists.off.p)[a->lists.off.n / 4 - 1] : 0;
    GROW(list, rows - start);
    return off_push(&a->lists, rows);
}

/* ---------------------------------------------------------------------------------------
 * All columns of one request (zeroed on allocation)
 */
typedef struct {
    Col res_dropped, res_schema, res_service, res_entities;
    Attrs res_attrs;
    /* Resource.entity_refs: list<struct<schema_url, type, id_keys, description_keys>> */
    Col ent_schema, ent_type, ent_ids, ent_id_vals, ent_descs, ent_desc_vals;
    Col sc_resource, sc_name, sc_version, sc_dropped, sc_schema;
    Attrs sc_attrs;
} Envelope;

typedef struct {
    Col scope, trace_id, span_id, state, parent, flags, name, kind, start, end;
    Col dropped_attrs, dropped_events, dropped_links, status_msg, status_code;
    Attrs attrs;
    Col events, ev_time, ev_name, ev_dropped;
    Attrs ev_attrs;
    Col links, ln_trace, ln_span, ln_state, ln_dropped, ln_flags;
    Attrs ln_attrs;
} TraceCols;

typedef struct {
    Col scope, time, observed, severity, severity_text, dropped, flags, trace_id, span_id;
    Col event_name, body_valid;
    Values body;
    Attrs attrs;
} LogCols;

typedef struct {
    Attrs attrs;
    Col time, vtype, dbl, i64, span_id, trace_id;
} ExemplarCols;

typedef struct {
    Col metric, start, time, flags, exemplars;
    Attrs attrs;
    ExemplarCols ex;
} PointCols;

typedef struct {
    PointCols c;
    Col vtype, dbl, i64;
} NumberCols;

typedef struct {
    PointCols c;
    Col count, sum, buckets, bucket_vals, bounds, bound_vals, min, max;
} HistogramCols;

typedef struct {
    PointCols c;
    Col count, sum, scale, zero_count, pos_offset, pos, pos_vals, neg_offset, neg, neg_vals;
    Col min, max, zero_threshold;
} ExpHistogramCols;

typedef struct {
    PointCols c;
    Col count, sum, quantiles, q_quantile, q_value;
} SummaryCols;

typedef struct {
    Col scope, name, description, unit, type, temporality, monotonic;
    Attrs metadata;
    NumberCols gauge, sum;
    HistogramCols hist;
    ExpHistogramCols exp;
    SummaryCols summary;
} MetricCols;

typedef struct {
    Envelope env;
    TraceCols tr;
    LogCols lg;
    MetricCols mt;
} Columns;

typedef struct {
    Columns *c;
    int unsupported; /* a NaN/Inf met while rendering a nested value as JSON */
    int oom;         /* an allocation failed while exporting */
    int broken;      /* a column's length disagrees with its table's (a bug: raise) */
    uint8_t *base;   /* the export block (NULL while sizing it) */
    size_t used;     /* bytes of it reserved so far */
} Dec;

/* Empties columns for the next request, keeping their memory unless it grew large. */
static void reset_cols(Col *cols, size_t count, size_t keep)
{
    for (size_t i = 0; i < count; i++) {
        Buf *bufs[] = {&cols[i].data, &cols[i].off, &cols[i].valid};
        for (int j = 0; j < 3; j++) {
            if (bufs[j]->cap > keep) {
                free(bufs[j]->p);
                bufs[j]->p = NULL;
                bufs[j]->cap = 0;
            }
            bufs[j]->n = 0;
        }
        cols[i].nulls = 0;
    }
}

/* ---------------------------------------------------------------------------------------
 * Wire format
 */
enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };
#define TAG(field, wt) (((uint32_t)(field) << 3) | (wt))

static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static inline uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline double as_double(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

/* A varint of at most 10 bytes; bits beyond 64 are dropped, as upb does. NULL if truncated
 * or longer. */
static inline const uint8_t *read_varint(const uint8_t *p, const uint8_t *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (p >= end) return NULL;
        uint8_t byte = *p++;
        v |= (uint64_t)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            *out = v;
            return p;
        }
    }
    return NULL;
}

static inline size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* One field: its tag and, by wire type, its scalar value or its payload. */
typedef struct {
    uint32_t tag;
    uint64_t v;
    Bytes s;
} Field;

/* Reads the field at *pp (which must be < end). Groups (wire types 3 and 4) and the
 * undefined wire types 6 and 7 are BAD: upb skips groups, but nobody sends them. */
static inline int next_field(const uint8_t **pp, const uint8_t *end, Field *f)
{
    const uint8_t *p = *pp;
    uint64_t tag;
    if (*p < 0x80) {
        tag = *p++;
    } else {
        const uint8_t *q = read_varint(p, end, &tag);
        if (!q || q - p > 5 || tag > UINT32_MAX) return DEFER;
        p = q;
    }
    if (tag < 8) return DEFER; /* field number 0 */
    f->tag = (uint32_t)tag;
    switch (tag & 7) {
    case WT_VARINT:
        if (p < end && *p < 0x80) {
            f->v = *p++;
        } else if (!(p = read_varint(p, end, &f->v))) {
            return DEFER;
        }
        break;
    case WT_I64:
        if (end - p < 8) return DEFER;
        f->v = le64(p);
        p += 8;
        break;
    case WT_I32:
        if (end - p < 4) return DEFER;
        f->v = le32(p);
        p += 4;
        break;
    case WT_LEN: {
        uint64_t n;
        if (p < end && *p < 0x80) {
            n = *p++;
        } else if (!(p = read_varint(p, end, &n))) {
            return DEFER;
        }
        if (n > (uint64_t)(end - p) || n >= INT32_MAX) return DEFER;
        f->s.p = p;
        f->s.n = (size_t)n;
        p += n;
        break;
    }
    default:
        return DEFER;
    }
    *pp = p;
    return OK;
}

/* Loops over the fields of a message body [p, end), leaving each in `f`; a malformed field
 * returns from the enclosing function. The caller declares `int rc_`. Inside the body,
 * `continue` moves to the next field. */
#define FOR_EACH_FIELD(p, end, f)                   \
    for (Field f; (p) < (end);)                     \
        if ((rc_ = next_field(&(p), (end), &f))) {  \
            return rc_;                             \
        } else

/* proto3 enum / int32: upb keeps the low 32 bits, signed */
static inline int32_t as_int32(uint64_t v) { return (int32_t)(uint32_t)v; }

static inline int32_t zigzag32(uint64_t v)
{
    uint32_t u = (uint32_t)v;
    return (int32_t)((u >> 1) ^ (0u - (u & 1)));
}

/* Enums land in int8 columns; values outside are refused by the Python decoder. */
static inline int enum_int8(uint64_t raw, int8_t *out)
{
    int32_t v = as_int32(raw);
    if (v < -128 || v > 127) return DEFER;
    *out = (int8_t)v;
    return OK;
}

/* ---------------------------------------------------------------------------------------
 * UTF-8 validation (strict, as upb, Python and Arrow: no overlongs, surrogates or > U+10FFFF)
 */
static int utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ULL)) {
                i += 8;
                continue;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
        } else if (c < 0xC2) {
            return 0;
        } else if (c < 0xE0) {
            if (n - i < 2 || (s[i + 1] & 0xC0) != 0x80) return 0;
            i += 2;
        } else if (c < 0xF0) {
            if (n - i < 3) return 0;
            uint8_t c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && c1 < 0xA0) return 0; /* overlong */
            if (c == 0xED && c1 >= 0xA0) return 0; /* surrogate */
            i += 3;
        } else if (c < 0xF5) {
            if (n - i < 4) return 0;
            uint8_t c1 = s[i + 1];
            if ((c1 & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 || (s[i + 3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && c1 < 0x90) return 0; /* overlong */
            if (c == 0xF4 && c1 >= 0x90) return 0; /* beyond U+10FFFF */
            i += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static inline int utf8_field(const Field *f, Bytes *out)
{
    if (!utf8_ok(f->s.p, f->s.n)) return DEFER;
    *out = f->s;
    return OK;
}

/* Every row of a string column is valid UTF-8. Attribute keys and string values are checked
 * here, once per request, instead of one call per string: the column's bytes are scanned
 * 8 at a time while they are ASCII (nearly always all of them), and only the rows from the
 * first byte >= 0x80 on are checked one by one (a multi-byte character split over two rows
 * would pass a check of the bytes as a whole). */
static int text_ok(const Col *c)
{
    const uint8_t *p = c->data.p;
    size_t n = c->data.n, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) break;
    }
    while (i < n && p[i] < 0x80) i++;
    if (i == n) return 1;
    const int32_t *off = (const int32_t *)c->off.p;
    for (int64_t r = 0, rows = string_rows(c); r < rows; r++)
        if ((size_t)off[r + 1] > i && !utf8_ok(p + off[r], (size_t)(off[r + 1] - off[r])))
            return 0;
    return 1;
}

static int attrs_text_ok(const Attrs *a) { return text_ok(&a->key) && text_ok(&a->v.str); }

static int points_text_ok(const PointCols *c) { return attrs_text_ok(&c->attrs) && attrs_text_ok(&c->ex.attrs); }

/* The UTF-8 check of all attribute keys and string values of the request (see text_ok). */
static int columns_text_ok(const Columns *c)
{
    const MetricCols *m = &c->mt;
    return attrs_text_ok(&c->env.res_attrs) && attrs_text_ok(&c->env.sc_attrs) &&
           attrs_text_ok(&c->tr.attrs) && attrs_text_ok(&c->tr.ev_attrs) &&
           attrs_text_ok(&c->tr.ln_attrs) && attrs_text_ok(&c->lg.attrs) &&
           text_ok(&c->lg.body.str) && attrs_text_ok(&m->metadata) &&
           points_text_ok(&m->gauge.c) && points_text_ok(&m->sum.c) &&
           points_text_ok(&m->hist.c) && points_text_ok(&m->exp.c) &&
           points_text_ok(&m->summary.c);
}

/* ---------------------------------------------------------------------------------------
 * JSON rendering of arrays and kvlists: pcommon Value.AsString(), as otlp/anyvalue.py's
 * as_string renders it (Go encoding/json). Rendering only happens for nested values whose
 * encoding is canonical (what upb would re-serialize), so the raw bytes kept in the batch are
 * the same as the Python decoder's.
 */

/* A Go JSON string: quotes, backslashes and control characters escaped as json.dumps does,
 * plus Go's HTML-safe escapes of < > & and U+2028/U+2029. */
static int json_str(Buf *out, Bytes s)
{
    static const char hex[] = "0123456789abcdef";
    TRY(buf_ch(out, '"'));
    size_t run = 0; /* bytes copied verbatim, flushed in one piece */
    for (size_t i = 0; i < s.n; i++) {
        uint8_t c = s.p[i];
        const char *esc = NULL;
        char u[7];
        if (c == '"') {
            esc = "\\\"";
        } else if (c == '\\') {
            esc = "\\\\";
        } else if (c == '\n') {
            esc = "\\n";
        } else if (c == '\r') {
            esc = "\\r";
        } else if (c == '\t') {
            esc = "\\t";
        } else if (c == '\b') {
            esc = "\\b";
        } else if (c == '\f') {
            esc = "\\f";
        } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
            memcpy(u, "\\u00", 4);
            u[4] = hex[c >> 4];
            u[5] = hex[c & 15];
            u[6] = 0;
            esc = u;
        } else if (c == 0xE2 && s.n - i >= 3 && s.p[i + 1] == 0x80 &&
                   (s.p[i + 2] == 0xA8 || s.p[i + 2] == 0xA9)) {
            esc = s.p[i + 2] == 0xA8 ? "\\u2028" : "\\u2029";
        }
        if (!esc) {
            run++;
            continue;
        }
        TRY(buf_put(out, s.p + i - run, run));
        run = 0;
        TRY(buf_lit(out, esc));
        if (c == 0xE2) i += 2;
    }
    TRY(buf_put(out, s.p + s.n - run, run));
    return buf_ch(out, '"');
}

static int json_base64(Buf *out, Bytes s)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    TRY(buf_ch(out, '"'));
    TRY(buf_grow(out, (s.n + 2) / 3 * 4 + 1));
    size_t i = 0;
    char q[4];
    for (; i + 3 <= s.n; i += 3) {
        uint32_t v = (uint32_t)s.p[i] << 16 | (uint32_t)s.p[i + 1] << 8 | s.p[i + 2];
        q[0] = tbl[v >> 18];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = tbl[(v >> 6) & 63];
        q[3] = tbl[v & 63];
        TRY(buf_put(out, q, 4));
    }
    if (s.n - i == 1) {
        uint32_t v = (uint32_t)s.p[i] << 16;
        q[0] = tbl[v >> 18];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = q[3] = '=';
        TRY(buf_put(out, q, 4));
    } else if (s.n - i == 2) {
        uint32_t v = (uint32_t)s.p[i] << 16 | (uint32_t)s.p[i + 1] << 8;
        q[0] = tbl[v >> 18];
        q[1] = tbl[(v >> 12) & 63];
        q[2] = tbl[(v >> 6) & 63];
        q[3] = '=';
        TRY(buf_put(out, q, 4));
    }
    return buf_ch(out, '"');
}

/* A float64 as Go's encoding/json writes it (mirrors anyvalue.go_float): Python's shortest
 * repr digits; exponent form below 1e-6 and from 1e21 with the exponent's leading zeros
 * dropped, fixed notation in between. NaN/Inf make the whole rendering "" (json.Marshal
 * fails), flagged in d->unsupported. */
static int go_float(Dec *d, Buf *out, double x)
{
    if (isnan(x) || isinf(x)) {
        d->unsupported = 1;
        return OK;
    }
    char *repr = PyOS_double_to_string(x, 'r', 0, 0, NULL);
    if (!repr) {
        PyErr_Clear();
        return NOMEM;
    }
    int rc = OK;
    double mag = fabs(x);
    char *e = strchr(repr, 'e');
    if (!e) {
        rc = buf_lit(out, repr);
    } else if (mag != 0 && (mag < 1e-6 || mag >= 1e21)) {
        const char *digits = e + 2;
        while (*digits == '0') digits++;
        if ((rc = buf_put(out, repr, (size_t)(e - repr) + 2)) == OK)
            rc = buf_lit(out, *digits ? digits : "0");
    } else {
        /* Python formats these as format(Decimal(repr), "f"): the same digits, fixed */
        const char *m = repr;
        if (*m == '-') {
            rc = buf_ch(out, '-');
            m++;
        }
        char digits[32];
        int nd = 0, intlen = -1;
        for (const char *c = m; c < e && nd < 30; c++) {
            if (*c == '.') intlen = nd;
            else digits[nd++] = *c;
        }
        if (intlen < 0) intlen = nd;
        int point = intlen + atoi(e + 1);
        if (rc == OK && point <= 0) {
            rc = buf_lit(out, "0.");
            for (int i = 0; rc == OK && i < -point; i++) rc = buf_ch(out, '0');
            if (rc == OK) rc = buf_put(out, digits, (size_t)nd);
        } else if (rc == OK && point >= nd) {
            rc = buf_put(out, digits, (size_t)nd);
            for (int i = nd; rc == OK && i < point; i++) rc = buf_ch(out, '0');
        } else if (rc == OK) {
            rc = buf_put(out, digits, (size_t)point);
            if (rc == OK) rc = buf_ch(out, '.');
            if (rc == OK) rc = buf_put(out, digits + point, (size_t)(nd - point));
        }
    }
    PyMem_Free(repr);
    return rc;
}

static int json_int(Buf *out, int64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%lld", (long long)v);
    return buf_put(out, tmp, (size_t)n);
}

/* Canonical encodings, as upb writes them: one-byte tags here, minimal varints, and for
 * 10-byte varints (negative int64s) a final byte of 1. */
static inline const uint8_t *canon_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    const uint8_t *q = read_varint(p, end, v);
    if (!q) return NULL;
    size_t used = (size_t)(q - p);
    if (used != varint_size(*v) || (used == 10 && q[-1] != 1)) return NULL;
    return q;
}

/* A canonical length-delimited field with one-byte tag `tag` at *pp. */
static inline int canon_len(const uint8_t **pp, const uint8_t *end, uint8_t tag, Bytes *out)
{
    const uint8_t *p = *pp;
    uint64_t n;
    if (p >= end || *p != tag) return DEFER;
    p = canon_varint(p + 1, end, &n);
    if (!p || n > (uint64_t)(end - p)) return DEFER;
    out->p = p;
    out->n = (size_t)n;
    *pp = p + n;
    return OK;
}

static int render_array(Dec *d, Buf *out, Bytes s, int depth);
static int render_kvlist(Dec *d, Buf *out, Bytes s, int depth);

/* A nested AnyValue (inside an array or kvlist): checks it is canonical and valid, and
 * renders it to `out` unless out is NULL (validation only). */
static int render_value(Dec *d, Buf *out, Bytes s, int depth)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    Bytes payload;
    uint64_t v = 0;
    if (p == end) return out ? buf_lit(out, "null") : OK;
    switch (*p) {
    case 0x0A: /* string_value */
        TRY(canon_len(&p, end, 0x0A, &payload));
        if (p != end || !utf8_ok(payload.p, payload.n)) return DEFER;
        return out ? json_str(out, payload) : OK;
    case 0x10: /* bool_value: upb writes 0 or 1 */
        if (end - p != 2 || p[1] > 1) return DEFER;
        return out ? buf_lit(out, p[1] ? "true" : "false") : OK;
    case 0x18: /* int_value */
        if (canon_varint(p + 1, end, &v) != end) return DEFER;
        return out ? json_int(out, (int64_t)v) : OK;
    case 0x21: /* double_value */
        if (end - p != 9) return DEFER;
        return out ? go_float(d, out, as_double(le64(p + 1))) : OK;
    case 0x2A: /* array_value */
        TRY(canon_len(&p, end, 0x2A, &payload));
        if (p != end) return DEFER;
        return render_array(d, out, payload, depth + 1);
    case 0x32: /* kvlist_value */
        TRY(canon_len(&p, end, 0x32, &payload));
        if (p != end) return DEFER;
        return render_kvlist(d, out, payload, depth + 1);
    case 0x3A: /* bytes_value */
        TRY(canon_len(&p, end, 0x3A, &payload));
        if (p != end) return DEFER;
        return out ? json_base64(out, payload) : OK;
    case 0x40: /* string_value_strindex (int32, sign-extended): rendered as an empty value */
        if (canon_varint(p + 1, end, &v) != end || v != (uint64_t)(int64_t)as_int32(v))
            return DEFER;
        return out ? buf_lit(out, "null") : OK;
    default:
        return DEFER;
    }
}

/* ArrayValue payload: repeated AnyValue values = 1 */
static int render_array(Dec *d, Buf *out, Bytes s, int depth)
{
    if (depth > MAX_DEPTH) return DEFER;
    const uint8_t *p = s.p, *end = s.p + s.n;
    if (out) TRY(buf_ch(out, '['));
    for (int first = 1; p < end; first = 0) {
        Bytes item;
        TRY(canon_len(&p, end, 0x0A, &item));
        if (out && !first) TRY(buf_ch(out, ','));
        TRY(render_value(d, out, item, depth));
    }
    return out ? buf_ch(out, ']') : OK;
}

typedef struct {
    Bytes key, value;
    size_t index;
} Entry;

static int entry_cmp(const void *a, const void *b)
{
    const Entry *x = a, *y = b;
    size_t n = x->key.n < y->key.n ? x->key.n : y->key.n;
    int c = n ? memcmp(x->key.p, y->key.p, n) : 0;
    if (c) return c;
    if (x->key.n != y->key.n) return x->key.n < y->key.n ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

/* KeyValueList payload: repeated KeyValue values = 1. Rendered as a Go map: the last of
 * duplicate keys wins, keys sorted (bytewise UTF-8 = code point order, as Python's sorted). */
static int render_kvlist(Dec *d, Buf *out, Bytes s, int depth)
{
    if (depth > MAX_DEPTH) return DEFER;
    const uint8_t *p = s.p, *end = s.p + s.n;
    Entry local[16], *entries = local;
    size_t count = 0, cap = 16;
    int rc = OK;
    while (p < end && rc == OK) {
        Bytes kv;
        Entry e = {NO_BYTES, NO_BYTES, count};
        if ((rc = canon_len(&p, end, 0x0A, &kv))) break;
        const uint8_t *q = kv.p, *kv_end = kv.p + kv.n;
        /* canonical KeyValue: the key only when non-empty, then the value when set */
        if (q < kv_end && *q == 0x0A) {
            if ((rc = canon_len(&q, kv_end, 0x0A, &e.key))) break;
            if (!e.key.n || !utf8_ok(e.key.p, e.key.n)) rc = DEFER;
        }
        if (rc == OK && q < kv_end && *q == 0x12) rc = canon_len(&q, kv_end, 0x12, &e.value);
        if (rc == OK && q != kv_end) rc = DEFER;
        if (rc == OK) rc = render_value(d, NULL, e.value, depth);
        if (rc == OK && out) {
            if (count == cap) {
                Entry *grown = malloc(2 * cap * sizeof(Entry));
                if (!grown) {
                    rc = NOMEM;
                    break;
                }
                memcpy(grown, entries, count * sizeof(Entry));
                if (entries != local) free(entries);
                entries = grown;
                cap *= 2;
            }
            entries[count] = e;
        }
        count++;
    }
    if (rc == OK && out) {
        qsort(entries, count, sizeof(Entry), entry_cmp);
        rc = buf_ch(out, '{');
        int first = 1;
        for (size_t i = 0; i < count && rc == OK; i++) {
            const Entry *e = &entries[i];
            if (i + 1 < count && e->key.n == entries[i + 1].key.n &&
                (!e->key.n || !memcmp(e->key.p, entries[i + 1].key.p, e->key.n)))
                continue; /* a later duplicate wins */
            if (!first) rc = buf_ch(out, ',');
            first = 0;
            if (rc == OK) rc = json_str(out, e->key);
            if (rc == OK) rc = buf_ch(out, ':');
            if (rc == OK) rc = render_value(d, out, e->value, depth);
        }
        if (rc == OK) rc = buf_ch(out, '}');
    }
    if (entries != local) free(entries);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * AnyValue and KeyValue
 */
typedef struct {
    int type;
    Bytes s;   /* string_value / bytes_value, or the array/kvlist payload */
    Bytes raw; /* the whole AnyValue, kept as the bytes of arrays and kvlists */
    int64_t i;
    double d;
    int b;
} AnyValue;

/* A top-level AnyValue (an attribute's value or a log body), upb semantics: unknown fields
 * (and known ones with another wire type) are skipped; a oneof set twice is left to upb.
 * A string value is not checked for UTF-8 here: it lands in its column's bytes, which
 * columns_text_ok checks in one pass once the request is read. */
static int parse_anyvalue(Bytes s, AnyValue *av)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    int members = 0, fields = 0, rc_;
    size_t header = 0;
    /* assigned whole: a memset then two field stores made the CPU wait on store forwarding */
    *av = (AnyValue){.type = V_EMPTY, .s = NO_BYTES, .raw = NO_BYTES};
    /* the common encodings, as every SDK writes them: one field, a one-byte length */
    if (s.n >= 2 && s.n < 0x82) {
        if (p[0] == 0x0A && (size_t)p[1] + 2 == s.n) {
            av->type = V_STRING;
            av->s = (Bytes){p + 2, p[1]};
            return OK;
        }
        if (p[0] == 0x21 && s.n == 9) {
            av->type = V_DOUBLE;
            av->d = as_double(le64(p + 1));
            return OK;
        }
        uint64_t v = 0;
        if (p[0] == 0x18 && read_varint(p + 1, end, &v) == end) {
            av->type = V_INT;
            av->i = (int64_t)v;
            return OK;
        }
        if (p[0] == 0x10 && p[1] < 0x80 && s.n == 2) {
            av->type = V_BOOL;
            av->b = p[1] != 0;
            return OK;
        }
    }
    FOR_EACH_FIELD(p, end, f)
    {
        fields++;
        switch (f.tag) {
        case TAG(1, WT_LEN):
            av->s = f.s;
            av->type = V_STRING;
            break;
        case TAG(2, WT_VARINT):
            av->type = V_BOOL;
            av->b = f.v != 0;
            break;
        case TAG(3, WT_VARINT):
            av->type = V_INT;
            av->i = (int64_t)f.v;
            break;
        case TAG(4, WT_I64):
            av->type = V_DOUBLE;
            av->d = as_double(f.v);
            break;
        case TAG(5, WT_LEN):
        case TAG(6, WT_LEN):
            av->type = f.tag == TAG(5, WT_LEN) ? V_ARRAY : V_KVLIST;
            av->s = f.s;
            header = (size_t)(f.s.p - s.p);
            break;
        case TAG(7, WT_LEN):
            av->type = V_BYTES;
            av->s = f.s;
            break;
        case TAG(8, WT_VARINT):
            /* string_value_strindex: profiles only, to be treated as absent elsewhere */
            av->type = V_EMPTY;
            break;
        default:
            continue;
        }
        members++;
    }
    if (members > 1) return DEFER;
    if (av->type == V_ARRAY || av->type == V_KVLIST) {
        /* the batch keeps the AnyValue as upb re-serializes it: the input must be canonical */
        if (fields != 1 || header != 1 + varint_size(av->s.n)) return DEFER;
        av->raw = s;
    }
    return OK;
}

static int emit_value(Dec *d, Values *v, const AnyValue *av)
{
    size_t str_mark = v->str.data.n, bin_mark = v->bin.data.n;
    TRY(col_i8(&v->type, (int8_t)av->type));
    if (av->type == V_STRING) {
        TRY(buf_put(&v->str.data, av->s.p, av->s.n));
    } else if (av->type == V_ARRAY || av->type == V_KVLIST) {
        size_t mark = v->str.data.n;
        d->unsupported = 0;
        if (av->type == V_ARRAY)
            TRY(render_array(d, &v->str.data, av->s, 1));
        else
            TRY(render_kvlist(d, &v->str.data, av->s, 1));
        if (d->unsupported) v->str.data.n = mark; /* AsString() of a NaN is "" */
    }
    TRY(col_end(&v->str));
    TRY(col_i64(&v->i, av->type == V_INT ? av->i : 0));
    TRY(col_f64(&v->d, av->type == V_DOUBLE ? av->d : 0.0));
    TRY(col_u8(&v->b, (uint8_t)(av->type == V_BOOL && av->b)));
    if (av->type == V_BYTES)
        TRY(buf_put(&v->bin.data, av->s.p, av->s.n));
    else if (av->type == V_ARRAY || av->type == V_KVLIST)
        TRY(buf_put(&v->bin.data, av->raw.p, av->raw.n));
    GROW(value, v->str.data.n - str_mark);
    GROW(value, v->bin.data.n - bin_mark);
    if (av->type == V_ARRAY || av->type == V_KVLIST) GROW(nested, av->raw.n);
    return col_end(&v->bin);
}

/* resource.attributes["service.name"], looked up as otlp/decode.py's _service_name does */
typedef struct {
    int found;
    Bytes value;
} ServiceName;

static const uint8_t SERVICE_NAME_KV[] = "\x0a\x0cservice.name";

static int contains(Bytes hay, const uint8_t *needle, size_t n)
{
    for (size_t i = 0; i + n <= hay.n; i++)
        if (hay.p[i] == needle[0] && !memcmp(hay.p + i, needle, n)) return 1;
    return 0;
}

/* The key and value of a KeyValue (key = 1, value = 2; key_strindex = 3 is profiles-only).
 * The key kept is checked for UTF-8 with its column (columns_text_ok), one it replaces here. */
static int split_keyvalue(Bytes s, Bytes *key, Bytes *value)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    /* the common encoding: key, then value, each with a one-byte length */
    if (s.n >= 4 && p[0] == 0x0A && p[1] < 0x80 && (size_t)p[1] + 4 <= s.n) {
        const uint8_t *v = p + 2 + p[1];
        if (v[0] == 0x12 && v[1] < 0x80 && (size_t)(v + 2 + v[1] - p) == s.n) {
            *key = (Bytes){p + 2, p[1]};
            *value = (Bytes){v + 2, v[1]};
            return OK;
        }
    }
    int has_key = 0, has_value = 0, rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        if (f.tag == TAG(1, WT_LEN)) {
            if (has_key && !utf8_ok(key->p, key->n)) return DEFER; /* upb checks every copy */
            has_key = 1;
            *key = f.s;
        } else if (f.tag == TAG(2, WT_LEN)) {
            if (has_value) return DEFER; /* upb merges the two AnyValues */
            has_value = 1;
            *value = f.s;
        }
    }
    return OK;
}

/* One KeyValue appended to `a`. */
static int parse_keyvalue(Dec *d, Attrs *a, Bytes s, ServiceName *svc)
{
    Bytes key = NO_BYTES, value = NO_BYTES;
    TRY(split_keyvalue(s, &key, &value));
    AnyValue av;
    TRY(parse_anyvalue(value, &av));
    GROW(key, key.n);
    TRY(col_bytes(&a->key, key));
    TRY(emit_value(d, &a->v, &av));
    /* the first KeyValue whose bytes hold the canonical key wins (pcommon Map.Get) */
    if (svc && !svc->found && key.n == 12 && !memcmp(key.p, "service.name", 12) &&
        contains(s, SERVICE_NAME_KV, sizeof SERVICE_NAME_KV - 1)) {
        svc->found = 1;
        svc->value = av.type == V_STRING ? av.s : NO_BYTES;
    }
    return OK;
}

/* ---------------------------------------------------------------------------------------
 * Envelope: Resource*, Scope* holders (the same field numbers for all three signals)
 */
typedef int (*RecordParser)(Dec *d, Bytes s);

/* EntityRef: schema_url = 1, type = 2, repeated id_keys = 3, repeated description_keys = 4 */
static int parse_entity_ref(Dec *d, Bytes s)
{
    Envelope *e = &d->c->env;
    const uint8_t *p = s.p, *end = s.p + s.n;
    Bytes schema = NO_BYTES, type = NO_BYTES, item;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            TRY(utf8_field(&f, &schema));
            break;
        case TAG(2, WT_LEN):
            TRY(utf8_field(&f, &type));
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &item));
            TRY(col_bytes(&e->ent_id_vals, item));
            break;
        case TAG(4, WT_LEN):
            TRY(utf8_field(&f, &item));
            TRY(col_bytes(&e->ent_desc_vals, item));
            break;
        }
    }
    TRY(col_bytes(&e->ent_schema, schema));
    TRY(col_bytes(&e->ent_type, type));
    TRY(off_push(&e->ent_ids, (uint64_t)string_rows(&e->ent_id_vals)));
    return off_push(&e->ent_descs, (uint64_t)string_rows(&e->ent_desc_vals));
}

typedef struct {
    uint32_t dropped;
    ServiceName service;
} ResourceFields;

/* Resource: attributes = 1, dropped_attributes_count = 2, entity_refs = 3. A Resource sent
 * twice merges (upb), which appending to the same row does too. */
static int parse_resource(Dec *d, Bytes s, ResourceFields *r)
{
    Envelope *e = &d->c->env;
    const uint8_t *p = s.p, *end = s.p + s.n;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            TRY(parse_keyvalue(d, &e->res_attrs, f.s, &r->service));
            break;
        case TAG(2, WT_VARINT):
            r->dropped = (uint32_t)f.v;
            break;
        case TAG(3, WT_LEN):
            TRY(parse_entity_ref(d, f.s));
            break;
        }
    }
    return OK;
}

typedef struct {
    Bytes name, version;
    uint32_t dropped;
} ScopeFields;

/* InstrumentationScope: name = 1, version = 2, attributes = 3, dropped_attributes_count = 4 */
static int parse_scope(Dec *d, Bytes s, ScopeFields *sc)
{
    Envelope *e = &d->c->env;
    const uint8_t *p = s.p, *end = s.p + s.n;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            TRY(utf8_field(&f, &sc->name));
            break;
        case TAG(2, WT_LEN):
            TRY(utf8_field(&f, &sc->version));
            break;
        case TAG(3, WT_LEN):
            TRY(parse_keyvalue(d, &e->sc_attrs, f.s, NULL));
            break;
        case TAG(4, WT_VARINT):
            sc->dropped = (uint32_t)f.v;
            break;
        }
    }
    return OK;
}

/* Scope{Spans,Logs,Metrics}: scope = 1, repeated records = 2, schema_url = 3. The records'
 * scope_index is this holder's row, appended when the holder ends. */
static int parse_scope_holder(Dec *d, Bytes s, RecordParser record)
{
    Envelope *e = &d->c->env;
    const uint8_t *p = s.p, *end = s.p + s.n;
    ScopeFields sc = {NO_BYTES, NO_BYTES, 0};
    Bytes schema = NO_BYTES;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            TRY(parse_scope(d, f.s, &sc));
            break;
        case TAG(2, WT_LEN):
            TRY(record(d, f.s));
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &schema));
            break;
        }
    }
    TRY(col_i32(&e->sc_resource, (int32_t)ROWS(e->res_dropped, 4)));
    TRY(col_bytes(&e->sc_name, sc.name));
    TRY(col_bytes(&e->sc_version, sc.version));
    TRY(attrs_close(&e->sc_attrs));
    TRY(col_u32(&e->sc_dropped, sc.dropped));
    return col_bytes(&e->sc_schema, schema);
}

/* Resource{Spans,Logs,Metrics}: resource = 1, repeated scope holders = 2, schema_url = 3 */
static int parse_resource_holder(Dec *d, Bytes s, RecordParser record)
{
    Envelope *e = &d->c->env;
    const uint8_t *p = s.p, *end = s.p + s.n;
    ResourceFields r = {0, {0, NO_BYTES}};
    Bytes schema = NO_BYTES;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            TRY(parse_resource(d, f.s, &r));
            break;
        case TAG(2, WT_LEN):
            TRY(parse_scope_holder(d, f.s, record));
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &schema));
            break;
        }
    }
    TRY(attrs_close(&e->res_attrs));
    TRY(col_u32(&e->res_dropped, r.dropped));
    TRY(col_bytes(&e->res_schema, schema));
    TRY(col_bytes(&e->res_service, r.service.found ? r.service.value : NO_BYTES));
    return off_push(&e->res_entities, (uint64_t)string_rows(&e->ent_type));
}

/* Export*ServiceRequest: repeated resource holders = 1 */
static int parse_request(Dec *d, Bytes s, RecordParser record)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        if (f.tag == TAG(1, WT_LEN)) TRY(parse_resource_holder(d, f.s, record));
    }
    return OK;
}

static int32_t scope_index(Dec *d) { return (int32_t)ROWS(d->c->env.sc_resource, 4); }

/* ---------------------------------------------------------------------------------------
 * Traces
 */

/* Span.Event: time_unix_nano = 1, name = 2, attributes = 3, dropped_attributes_count = 4 */
static int parse_event(Dec *d, Bytes s)
{
    TraceCols *t = &d->c->tr;
    const uint8_t *p = s.p, *end = s.p + s.n;
    uint64_t time = 0;
    Bytes name = NO_BYTES;
    uint32_t dropped = 0;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_I64):
            time = f.v;
            break;
        case TAG(2, WT_LEN):
            TRY(utf8_field(&f, &name));
            break;
        case TAG(3, WT_LEN):
            TRY(parse_keyvalue(d, &t->ev_attrs, f.s, NULL));
            break;
        case TAG(4, WT_VARINT):
            dropped = (uint32_t)f.v;
            break;
        }
    }
    TRY(col_u64(&t->ev_time, time));
    TRY(col_bytes(&t->ev_name, name));
    TRY(attrs_close(&t->ev_attrs));
    return col_u32(&t->ev_dropped, dropped);
}

/* Span.Link: trace_id = 1, span_id = 2, trace_state = 3, attributes = 4,
 * dropped_attributes_count = 5, flags = 6 (fixed32) */
static int parse_link(Dec *d, Bytes s)
{
    TraceCols *t = &d->c->tr;
    const uint8_t *p = s.p, *end = s.p + s.n;
    Bytes trace = NO_BYTES, span = NO_BYTES, state = NO_BYTES;
    uint32_t dropped = 0, flags = 0;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            trace = f.s;
            break;
        case TAG(2, WT_LEN):
            span = f.s;
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &state));
            break;
        case TAG(4, WT_LEN):
            TRY(parse_keyvalue(d, &t->ln_attrs, f.s, NULL));
            break;
        case TAG(5, WT_VARINT):
            dropped = (uint32_t)f.v;
            break;
        case TAG(6, WT_I32):
            flags = (uint32_t)f.v;
            break;
        }
    }
    TRY(col_id(&t->ln_trace, trace, 16));
    TRY(col_id(&t->ln_span, span, 8));
    TRY(col_bytes(&t->ln_state, state));
    TRY(attrs_close(&t->ln_attrs));
    TRY(col_u32(&t->ln_dropped, dropped));
    return col_u32(&t->ln_flags, flags);
}

/* Status: message = 2, code = 3 (field 1 is reserved) */
static int parse_status(Bytes s, Bytes *message, int8_t *code)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        if (f.tag == TAG(2, WT_LEN))
            TRY(utf8_field(&f, message));
        else if (f.tag == TAG(3, WT_VARINT))
            TRY(enum_int8(f.v, code));
    }
    return OK;
}

/* Span (see trace.proto for the field numbers). Scalars: the last occurrence wins. The
 * status is read from its last occurrence only: the Python decoder's shadow message holds it
 * as bytes, so two statuses do not merge there either. */
static int parse_span(Dec *d, Bytes s)
{
    TraceCols *t = &d->c->tr;
    const uint8_t *p = s.p, *end = s.p + s.n;
    Bytes trace = NO_BYTES, span = NO_BYTES, parent = NO_BYTES, state = NO_BYTES;
    Bytes name = NO_BYTES, status = NO_BYTES, message = NO_BYTES;
    uint32_t flags = 0, dropped_attrs = 0, dropped_events = 0, dropped_links = 0;
    uint64_t kind = 0, start = 0, stop = 0;
    int8_t kind8 = 0, code = 0;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_LEN):
            trace = f.s;
            break;
        case TAG(2, WT_LEN):
            span = f.s;
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &state));
            break;
        case TAG(4, WT_LEN):
            parent = f.s;
            break;
        case TAG(5, WT_LEN):
            TRY(utf8_field(&f, &name));
            break;
        case TAG(6, WT_VARINT):
            kind = f.v;
            break;
        case TAG(7, WT_I64):
            start = f.v;
            break;
        case TAG(8, WT_I64):
            stop = f.v;
            break;
        case TAG(9, WT_LEN):
            TRY(parse_keyvalue(d, &t->attrs, f.s, NULL));
            break;
        case TAG(10, WT_VARINT):
            dropped_attrs = (uint32_t)f.v;
            break;
        case TAG(11, WT_LEN):
            TRY(parse_event(d, f.s));
            break;
        case TAG(12, WT_VARINT):
            dropped_events = (uint32_t)f.v;
            break;
        case TAG(13, WT_LEN):
            TRY(parse_link(d, f.s));
            break;
        case TAG(14, WT_VARINT):
            dropped_links = (uint32_t)f.v;
            break;
        case TAG(15, WT_LEN):
            status = f.s;
            break;
        case TAG(16, WT_I32):
            flags = (uint32_t)f.v;
            break;
        }
    }
    TRY(enum_int8(kind, &kind8));
    TRY(parse_status(status, &message, &code));
    TRY(col_i32(&t->scope, scope_index(d)));
    TRY(col_id(&t->trace_id, trace, 16));
    TRY(col_id(&t->span_id, span, 8));
    TRY(col_bytes(&t->state, state));
    TRY(col_id(&t->parent, parent, 8));
    TRY(col_u32(&t->flags, flags));
    TRY(col_bytes(&t->name, name));
    TRY(col_i8(&t->kind, kind8));
    TRY(col_u64(&t->start, start));
    TRY(col_u64(&t->end, stop));
    TRY(attrs_close(&t->attrs));
    TRY(col_u32(&t->dropped_attrs, dropped_attrs));
    TRY(off_push(&t->events, (uint64_t)ROWS(t->ev_time, 8)));
    TRY(col_u32(&t->dropped_events, dropped_events));
    TRY(off_push(&t->links, (uint64_t)ROWS(t->ln_flags, 4)));
    TRY(col_u32(&t->dropped_links, dropped_links));
    TRY(col_bytes(&t->status_msg, message));
    return col_i8(&t->status_code, code);
}

/* ---------------------------------------------------------------------------------------
 * Logs
 */

/* LogRecord (see logs.proto). The body is read from its last occurrence (a shadow bytes
 * field in the Python decoder); absent -> a null VALUE, present but empty -> V_EMPTY. */
static int parse_log(Dec *d, Bytes s)
{
    LogCols *l = &d->c->lg;
    const uint8_t *p = s.p, *end = s.p + s.n;
    uint64_t time = 0, observed = 0, severity = 0;
    Bytes text = NO_BYTES, body = NO_BYTES, trace = NO_BYTES, span = NO_BYTES;
    Bytes event = NO_BYTES;
    uint32_t dropped = 0, flags = 0;
    int has_body = 0, rc_;
    int8_t severity8;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(1, WT_I64):
            time = f.v;
            break;
        case TAG(2, WT_VARINT):
            severity = f.v;
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &text));
            break;
        case TAG(5, WT_LEN):
            body = f.s;
            has_body = 1;
            break;
        case TAG(6, WT_LEN):
            TRY(parse_keyvalue(d, &l->attrs, f.s, NULL));
            break;
        case TAG(7, WT_VARINT):
            dropped = (uint32_t)f.v;
            break;
        case TAG(8, WT_I32):
            flags = (uint32_t)f.v;
            break;
        case TAG(9, WT_LEN):
            trace = f.s;
            break;
        case TAG(10, WT_LEN):
            span = f.s;
            break;
        case TAG(11, WT_I64):
            observed = f.v;
            break;
        case TAG(12, WT_LEN):
            TRY(utf8_field(&f, &event));
            break;
        }
    }
    TRY(enum_int8(severity, &severity8));
    AnyValue av;
    TRY(parse_anyvalue(body, &av));
    TRY(col_i32(&l->scope, scope_index(d)));
    TRY(col_u64(&l->time, time));
    TRY(col_u64(&l->observed, observed));
    TRY(col_i8(&l->severity, severity8));
    TRY(col_bytes(&l->severity_text, text));
    TRY(emit_value(d, &l->body, &av));
    TRY(col_valid(&l->body_valid, has_body));
    TRY(attrs_close(&l->attrs));
    TRY(col_u32(&l->dropped, dropped));
    TRY(col_u32(&l->flags, flags));
    TRY(col_id(&l->trace_id, trace, 16));
    TRY(col_id(&l->span_id, span, 8));
    return col_bytes(&l->event_name, event);
}

/* ---------------------------------------------------------------------------------------
 * Metrics
 */

/* Exemplar: filtered_attributes = 7, time_unix_nano = 2, as_double = 3, as_int = 6,
 * span_id = 4, trace_id = 5 */
static int parse_exemplar(Dec *d, ExemplarCols *x, Bytes s)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    uint64_t time = 0, value = 0;
    int kind = N_NONE, rc_;
    Bytes span = NO_BYTES, trace = NO_BYTES;
    FOR_EACH_FIELD(p, end, f)
    {
        switch (f.tag) {
        case TAG(7, WT_LEN):
            TRY(parse_keyvalue(d, &x->attrs, f.s, NULL));
            break;
        case TAG(2, WT_I64):
            time = f.v;
            break;
        case TAG(3, WT_I64):
            kind = N_DOUBLE;
            value = f.v;
            break;
        case TAG(6, WT_I64):
            kind = N_INT;
            value = f.v;
            break;
        case TAG(4, WT_LEN):
            span = f.s;
            break;
        case TAG(5, WT_LEN):
            trace = f.s;
            break;
        }
    }
    TRY(attrs_close(&x->attrs));
    TRY(col_u64(&x->time, time));
    TRY(col_i8(&x->vtype, (int8_t)kind));
    TRY(col_f64(&x->dbl, kind == N_DOUBLE ? as_double(value) : 0.0));
    TRY(col_valid(&x->dbl, kind == N_DOUBLE));
    TRY(col_i64(&x->i64, kind == N_INT ? (int64_t)value : 0));
    TRY(col_valid(&x->i64, kind == N_INT));
    TRY(col_id(&x->span_id, span, 8));
    return col_id(&x->trace_id, trace, 16);
}

/* The fields every data point type shares, collected while its message is read */
typedef struct {
    uint64_t start, time;
    uint32_t flags;
} PointFields;

/* Handles a field common to all point types (the numbers differ per type); 1 if it was one */
static int point_common(Dec *d, PointCols *c, const Field *f, uint32_t attrs_tag,
                        uint32_t exemplar_tag, uint32_t flags_tag, PointFields *pf, int *rc)
{
    *rc = OK;
    if (f->tag == attrs_tag) {
        *rc = parse_keyvalue(d, &c->attrs, f->s, NULL);
    } else if (f->tag == TAG(2, WT_I64)) {
        pf->start = f->v;
    } else if (f->tag == TAG(3, WT_I64)) {
        pf->time = f->v;
    } else if (f->tag == exemplar_tag) {
        *rc = parse_exemplar(d, &c->ex, f->s);
    } else if (f->tag == flags_tag) {
        pf->flags = (uint32_t)f->v;
    } else {
        return 0;
    }
    return 1;
}

static int point_close(PointCols *c, int32_t metric, const PointFields *pf)
{
    TRY(col_i32(&c->metric, metric));
    TRY(attrs_close(&c->attrs));
    TRY(col_u64(&c->start, pf->start));
    TRY(col_u64(&c->time, pf->time));
    TRY(col_u32(&c->flags, pf->flags));
    return off_push(&c->exemplars, (uint64_t)ROWS(c->ex.time, 8));
}

static inline int opt_f64(Col *c, int present, uint64_t bits)
{
    TRY(col_f64(c, present ? as_double(bits) : 0.0));
    return col_valid(c, present);
}

/* NumberDataPoint: attributes = 7, start = 2, time = 3, as_double = 4, exemplars = 5,
 * as_int = 6, flags = 8 */
static int parse_number_point(Dec *d, NumberCols *n, Bytes s, int32_t metric)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    PointFields pf = {0, 0, 0};
    uint64_t value = 0;
    int kind = N_NONE, rc_, rc;
    FOR_EACH_FIELD(p, end, f)
    {
        if (point_common(d, &n->c, &f, TAG(7, WT_LEN), TAG(5, WT_LEN), TAG(8, WT_VARINT), &pf,
                         &rc)) {
            TRY(rc);
        } else if (f.tag == TAG(4, WT_I64)) {
            kind = N_DOUBLE;
            value = f.v;
        } else if (f.tag == TAG(6, WT_I64)) {
            kind = N_INT;
            value = f.v;
        }
    }
    TRY(point_close(&n->c, metric, &pf));
    TRY(col_i8(&n->vtype, (int8_t)kind));
    TRY(opt_f64(&n->dbl, kind == N_DOUBLE, value));
    TRY(col_i64(&n->i64, kind == N_INT ? (int64_t)value : 0));
    return col_valid(&n->i64, kind == N_INT);
}

/* repeated fixed64/double: packed (LEN) or one value per field (I64), as upb accepts */
static int repeated_fixed64(Col *values, const Field *f)
{
    if ((f->tag & 7) == WT_I64) return col_u64(values, f->v);
    if (f->s.n % 8) return DEFER;
    for (size_t i = 0; i < f->s.n; i += 8) TRY(col_u64(values, le64(f->s.p + i)));
    return OK;
}

/* HistogramDataPoint: attributes = 9, start = 2, time = 3, count = 4, sum = 5 (optional),
 * bucket_counts = 6, explicit_bounds = 7, exemplars = 8, flags = 10, min = 11, max = 12 */
static int parse_histogram_point(Dec *d, HistogramCols *h, Bytes s, int32_t metric)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    PointFields pf = {0, 0, 0};
    uint64_t count = 0, sum = 0, min = 0, max = 0;
    int has_sum = 0, has_min = 0, has_max = 0, rc_, rc;
    FOR_EACH_FIELD(p, end, f)
    {
        if (point_common(d, &h->c, &f, TAG(9, WT_LEN), TAG(8, WT_LEN), TAG(10, WT_VARINT), &pf,
                         &rc)) {
            TRY(rc);
            continue;
        }
        switch (f.tag) {
        case TAG(4, WT_I64):
            count = f.v;
            break;
        case TAG(5, WT_I64):
            sum = f.v;
            has_sum = 1;
            break;
        case TAG(6, WT_LEN):
        case TAG(6, WT_I64):
            TRY(repeated_fixed64(&h->bucket_vals, &f));
            break;
        case TAG(7, WT_LEN):
        case TAG(7, WT_I64):
            TRY(repeated_fixed64(&h->bound_vals, &f));
            break;
        case TAG(11, WT_I64):
            min = f.v;
            has_min = 1;
            break;
        case TAG(12, WT_I64):
            max = f.v;
            has_max = 1;
            break;
        }
    }
    TRY(point_close(&h->c, metric, &pf));
    TRY(col_u64(&h->count, count));
    TRY(opt_f64(&h->sum, has_sum, sum));
    TRY(off_push(&h->buckets, (uint64_t)ROWS(h->bucket_vals, 8)));
    TRY(off_push(&h->bounds, (uint64_t)ROWS(h->bound_vals, 8)));
    TRY(opt_f64(&h->min, has_min, min));
    return opt_f64(&h->max, has_max, max);
}

/* ExponentialHistogramDataPoint.Buckets: offset = 1 (sint32), bucket_counts = 2 (repeated
 * uint64, packed or not). Sent twice, buckets merge: the last offset, all counts. */
static int parse_buckets(Bytes s, int32_t *offset, Col *values)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        if (f.tag == TAG(1, WT_VARINT)) {
            *offset = zigzag32(f.v);
        } else if (f.tag == TAG(2, WT_VARINT)) {
            TRY(col_u64(values, f.v));
        } else if (f.tag == TAG(2, WT_LEN)) {
            const uint8_t *q = f.s.p, *q_end = f.s.p + f.s.n;
            while (q < q_end) {
                uint64_t v;
                if (!(q = read_varint(q, q_end, &v))) return DEFER;
                TRY(col_u64(values, v));
            }
        }
    }
    return OK;
}

/* ExponentialHistogramDataPoint: attributes = 1, start = 2, time = 3, count = 4, sum = 5
 * (optional), scale = 6 (sint32), zero_count = 7, positive = 8, negative = 9, flags = 10,
 * exemplars = 11, min = 12, max = 13, zero_threshold = 14 */
static int parse_exp_point(Dec *d, ExpHistogramCols *x, Bytes s, int32_t metric)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    PointFields pf = {0, 0, 0};
    uint64_t count = 0, sum = 0, zero_count = 0, min = 0, max = 0, threshold = 0;
    int32_t scale = 0, pos_offset = 0, neg_offset = 0;
    int has_sum = 0, has_min = 0, has_max = 0, rc_, rc;
    FOR_EACH_FIELD(p, end, f)
    {
        if (point_common(d, &x->c, &f, TAG(1, WT_LEN), TAG(11, WT_LEN), TAG(10, WT_VARINT), &pf,
                         &rc)) {
            TRY(rc);
            continue;
        }
        switch (f.tag) {
        case TAG(4, WT_I64):
            count = f.v;
            break;
        case TAG(5, WT_I64):
            sum = f.v;
            has_sum = 1;
            break;
        case TAG(6, WT_VARINT):
            scale = zigzag32(f.v);
            break;
        case TAG(7, WT_I64):
            zero_count = f.v;
            break;
        case TAG(8, WT_LEN):
            TRY(parse_buckets(f.s, &pos_offset, &x->pos_vals));
            break;
        case TAG(9, WT_LEN):
            TRY(parse_buckets(f.s, &neg_offset, &x->neg_vals));
            break;
        case TAG(12, WT_I64):
            min = f.v;
            has_min = 1;
            break;
        case TAG(13, WT_I64):
            max = f.v;
            has_max = 1;
            break;
        case TAG(14, WT_I64):
            threshold = f.v;
            break;
        }
    }
    TRY(point_close(&x->c, metric, &pf));
    TRY(col_u64(&x->count, count));
    TRY(opt_f64(&x->sum, has_sum, sum));
    TRY(col_i32(&x->scale, scale));
    TRY(col_u64(&x->zero_count, zero_count));
    TRY(col_i32(&x->pos_offset, pos_offset));
    TRY(off_push(&x->pos, (uint64_t)ROWS(x->pos_vals, 8)));
    TRY(col_i32(&x->neg_offset, neg_offset));
    TRY(off_push(&x->neg, (uint64_t)ROWS(x->neg_vals, 8)));
    TRY(opt_f64(&x->min, has_min, min));
    TRY(opt_f64(&x->max, has_max, max));
    return col_f64(&x->zero_threshold, as_double(threshold));
}

/* SummaryDataPoint: attributes = 7, start = 2, time = 3, count = 4, sum = 5,
 * quantile_values = 6 (quantile = 1, value = 2), flags = 8. No exemplars. */
static int parse_summary_point(Dec *d, SummaryCols *q, Bytes s, int32_t metric)
{
    const uint8_t *p = s.p, *end = s.p + s.n;
    PointFields pf = {0, 0, 0};
    uint64_t count = 0, sum = 0;
    int rc_, rc;
    FOR_EACH_FIELD(p, end, f)
    {
        /* 0 never matches a tag: summaries have no exemplars field */
        if (point_common(d, &q->c, &f, TAG(7, WT_LEN), 0, TAG(8, WT_VARINT), &pf, &rc)) {
            TRY(rc);
        } else if (f.tag == TAG(4, WT_I64)) {
            count = f.v;
        } else if (f.tag == TAG(5, WT_I64)) {
            sum = f.v;
        } else if (f.tag == TAG(6, WT_LEN)) {
            const uint8_t *r = f.s.p, *r_end = f.s.p + f.s.n;
            uint64_t quantile = 0, value = 0;
            FOR_EACH_FIELD(r, r_end, g)
            {
                if (g.tag == TAG(1, WT_I64))
                    quantile = g.v;
                else if (g.tag == TAG(2, WT_I64))
                    value = g.v;
            }
            TRY(col_f64(&q->q_quantile, as_double(quantile)));
            TRY(col_f64(&q->q_value, as_double(value)));
        }
    }
    TRY(point_close(&q->c, metric, &pf));
    TRY(col_u64(&q->count, count));
    TRY(col_f64(&q->sum, as_double(sum)));
    return off_push(&q->quantiles, (uint64_t)ROWS(q->q_value, 8));
}

typedef struct {
    int kind;
    uint64_t temporality;
    int monotonic;
} MetricData;

/* Gauge / Sum / Histogram / ExponentialHistogram / Summary: data_points = 1,
 * aggregation_temporality = 2 (not Gauge, Summary), is_monotonic = 3 (Sum) */
static int parse_metric_data(Dec *d, Bytes s, MetricData *md, int32_t metric)
{
    MetricCols *m = &d->c->mt;
    const uint8_t *p = s.p, *end = s.p + s.n;
    int temporal = md->kind == M_SUM || md->kind == M_HISTOGRAM ||
                   md->kind == M_EXPONENTIAL_HISTOGRAM;
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        if (f.tag == TAG(1, WT_LEN)) {
            switch (md->kind) {
            case M_GAUGE:
                TRY(parse_number_point(d, &m->gauge, f.s, metric));
                break;
            case M_SUM:
                TRY(parse_number_point(d, &m->sum, f.s, metric));
                break;
            case M_HISTOGRAM:
                TRY(parse_histogram_point(d, &m->hist, f.s, metric));
                break;
            case M_EXPONENTIAL_HISTOGRAM:
                TRY(parse_exp_point(d, &m->exp, f.s, metric));
                break;
            default:
                TRY(parse_summary_point(d, &m->summary, f.s, metric));
                break;
            }
        } else if (temporal && f.tag == TAG(2, WT_VARINT)) {
            md->temporality = f.v;
        } else if (md->kind == M_SUM && f.tag == TAG(3, WT_VARINT)) {
            md->monotonic = f.v != 0;
        }
    }
    return OK;
}

/* Metric: name = 1, description = 2, unit = 3, gauge = 5, sum = 7, histogram = 9,
 * exponential_histogram = 10, summary = 11, metadata = 12. The same data field twice merges
 * (its points append to the same table); a switch to another type discards the earlier
 * points in upb, so it is left to the Python decoder. */
static int parse_metric(Dec *d, Bytes s)
{
    MetricCols *m = &d->c->mt;
    const uint8_t *p = s.p, *end = s.p + s.n;
    Bytes name = NO_BYTES, description = NO_BYTES, unit = NO_BYTES;
    MetricData md = {M_EMPTY, 0, 0};
    int32_t metric = (int32_t)ROWS(m->scope, 4);
    int rc_;
    FOR_EACH_FIELD(p, end, f)
    {
        int kind = M_EMPTY;
        switch (f.tag) {
        case TAG(1, WT_LEN):
            TRY(utf8_field(&f, &name));
            break;
        case TAG(2, WT_LEN):
            TRY(utf8_field(&f, &description));
            break;
        case TAG(3, WT_LEN):
            TRY(utf8_field(&f, &unit));
            break;
        case TAG(5, WT_LEN):
            kind = M_GAUGE;
            break;
        case TAG(7, WT_LEN):
            kind = M_SUM;
            break;
        case TAG(9, WT_LEN):
            kind = M_HISTOGRAM;
            break;
        case TAG(10, WT_LEN):
            kind = M_EXPONENTIAL_HISTOGRAM;
            break;
        case TAG(11, WT_LEN):
            kind = M_SUMMARY;
            break;
        case TAG(12, WT_LEN):
            TRY(parse_keyvalue(d, &m->metadata, f.s, NULL));
            break;
        }
        if (kind != M_EMPTY) {
            if (md.kind != M_EMPTY && md.kind != kind) return DEFER;
            md.kind = kind;
            TRY(parse_metric_data(d, f.s, &md, metric));
        }
    }
    int temporal = md.kind == M_SUM || md.kind == M_HISTOGRAM ||
                   md.kind == M_EXPONENTIAL_HISTOGRAM;
    int8_t temporality = 0;
    if (temporal) TRY(enum_int8(md.temporality, &temporality));
    TRY(col_i32(&m->scope, scope_index(d)));
    TRY(col_bytes(&m->name, name));
    TRY(col_bytes(&m->description, description));
    TRY(col_bytes(&m->unit, unit));
    TRY(col_i8(&m->type, (int8_t)md.kind));
    TRY(col_i8(&m->temporality, temporality));
    TRY(col_valid(&m->temporality, temporal));
    TRY(col_u8(&m->monotonic, (uint8_t)(md.kind == M_SUM && md.monotonic)));
    TRY(col_valid(&m->monotonic, md.kind == M_SUM));
    return attrs_close(&m->metadata);
}

/* ---------------------------------------------------------------------------------------
 * Export: columns -> ArrowArray trees (the layouts of the schemas in otlp/batch.py)
 *
 * All buffers and nodes of one request are copied into one block (the columns themselves
 * are scratch memory reused by the next request). The block is sized by a first pass over
 * the same export code that only counts bytes (d->base == NULL), and given back (block_put)
 * when the last of its nodes is released: Arrow may release tables, or children it moved
 * out, independently and from any thread.
 */
typedef struct {
    void *raw;            /* what block_get returned */
    size_t cap;           /* its size, for block_put */
    atomic_llong refs;    /* live nodes */
} Arena;

/*
 * Export blocks are recycled. A block lives while the batch processor gathers a batch
 * (16 requests of 512 spans make one of 8192), then every block of the batch is released at
 * once and the next requests need as many again. Handed back to malloc, blocks of this size
 * (~350 KiB for 512 spans) are mapped and unmapped or trimmed off the heap each time, and
 * every page of a fresh block is a page fault on first touch (benchmarks/ scenario (a): 23
 * minor faults per request before, 11 with the pool; in-process, batches of 16 requests cost
 * ~0.1-0.4 us/span less). Kept here, up to POOL_BYTES of freed blocks are reused warm; that
 * much may stay allocated when the collector goes idle. Sizes are rounded up to BLOCK_STEP so
 * that requests of about the same size share blocks; the pool hands out the smallest block
 * that fits and never one more than twice the size asked (a big request's block is not
 * pinned by small ones). Blocks are released from any thread (Arrow drops tables where it
 * likes), hence the lock.
 */
#define BLOCK_STEP ((size_t)64 << 10)
#define POOL_BYTES ((size_t)8 << 20)
#define POOL_SLOTS 64

static struct {
    pthread_mutex_t lock;
    size_t bytes;
    int n;
    void *raw[POOL_SLOTS];
    size_t cap[POOL_SLOTS];
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* A block of at least `need` bytes; its size in *cap. NULL when out of memory. */
static void *block_get(size_t need, size_t *cap)
{
    size_t want = (need + BLOCK_STEP - 1) / BLOCK_STEP * BLOCK_STEP;
    if (want < need) return NULL;
    pthread_mutex_lock(&pool.lock);
    int best = -1;
    for (int i = 0; i < pool.n; i++)
        if (pool.cap[i] >= want && pool.cap[i] / 2 <= want &&
            (best < 0 || pool.cap[i] < pool.cap[best]))
            best = i;
    void *raw = NULL;
    if (best >= 0) {
        raw = pool.raw[best];
        *cap = pool.cap[best];
        pool.bytes -= pool.cap[best];
        pool.n--;
        pool.raw[best] = pool.raw[pool.n];
        pool.cap[best] = pool.cap[pool.n];
    }
    pthread_mutex_unlock(&pool.lock);
    if (raw) return raw;
    *cap = want;
    return malloc(want);
}

/* Back to the pool, or to malloc when the pool is full. */
static void block_put(void *raw, size_t cap)
{
    pthread_mutex_lock(&pool.lock);
    int kept = pool.n < POOL_SLOTS && pool.bytes + cap <= POOL_BYTES;
    if (kept) {
        pool.raw[pool.n] = raw;
        pool.cap[pool.n] = cap;
        pool.n++;
        pool.bytes += cap;
    }
    pthread_mutex_unlock(&pool.lock);
    if (!kept) free(raw);
}

static void arena_unref(Arena *arena)
{
    if (atomic_fetch_sub(&arena->refs, 1) == 1) block_put(arena->raw, arena->cap);
}

typedef struct {
    Arena *arena;
    int nk;
    const void *bufs[3];
    struct ArrowArray *kids[];
} Node;

static struct ArrowArray COUNTING; /* what mk returns while counting */

static void node_release(struct ArrowArray *a)
{
    Node *node = a->private_data;
    for (int i = 0; i < node->nk; i++) {
        struct ArrowArray *kid = node->kids[i];
        if (kid->release) kid->release(kid);
    }
    a->release = NULL;
    arena_unref(node->arena);
}

/* n bytes of the block, 64-byte aligned as Arrow recommends; NULL while counting */
static void *reserve(Dec *d, size_t n)
{
    size_t at = (d->used + 63) & ~(size_t)63;
    d->used = at + n;
    return d->base ? d->base + at : NULL;
}

static struct ArrowArray *mk(Dec *d, int64_t length, int64_t nulls, int nb, const void *b0,
                             const void *b1, const void *b2, int nk, struct ArrowArray **kids)
{
    struct ArrowArray *a = reserve(d, sizeof(struct ArrowArray));
    Node *node = reserve(d, sizeof(Node) + (size_t)nk * sizeof(struct ArrowArray *));
    if (!d->base) return &COUNTING;
    node->arena = (Arena *)d->base;
    node->nk = nk;
    node->bufs[0] = b0;
    node->bufs[1] = b1;
    node->bufs[2] = b2;
    for (int i = 0; i < nk; i++) node->kids[i] = kids[i];
    atomic_fetch_add(&node->arena->refs, 1);
    *a = (struct ArrowArray){
        .length = length,
        .null_count = nulls,
        .offset = 0,
        .n_buffers = nb,
        .n_children = nk,
        .buffers = node->bufs,
        .children = nk ? node->kids : NULL,
        .dictionary = NULL,
        .release = node_release,
        .private_data = node,
    };
    return a;
}

/* A copy of a column buffer in the block (at least 8 bytes: Arrow wants real pointers even
 * for empty buffers). */
static const void *take(Dec *d, const Buf *b)
{
    void *p = reserve(d, b->n > 8 ? b->n : 8);
    if (p && b->n) memcpy(p, b->p, b->n);
    return p;
}

static void check(Dec *d, int ok)
{
    if (!ok) d->broken = 1;
}

static uint8_t *bitmap(Dec *d, int64_t n)
{
    size_t size = (size_t)(n + 63) / 64 * 8;
    uint8_t *bits = reserve(d, size ? size : 8);
    if (bits) memset(bits, 0, size ? size : 8);
    return bits;
}

/* bit i = (bytes[i] != 0) */
static const void *pack_bytes(Dec *d, const uint8_t *bytes, int64_t n)
{
    uint8_t *bits = bitmap(d, n);
    if (bits)
        for (int64_t i = 0; i < n; i++)
            if (bytes[i]) bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    return bits;
}

static const void *validity(Dec *d, Col *c, int64_t n)
{
    check(d, c->nulls == 0 || (int64_t)c->valid.n == n);
    return c->nulls && !d->broken ? pack_bytes(d, c->valid.p, n) : NULL;
}

static struct ArrowArray *ex_fixed(Dec *d, Col *c, int64_t n, size_t width)
{
    check(d, c->data.n == (size_t)n * width);
    const void *valid = validity(d, c, n);
    return mk(d, n, c->nulls, 2, valid, take(d, &c->data), NULL, 0, NULL);
}

static struct ArrowArray *ex_bool(Dec *d, Col *c, int64_t n)
{
    check(d, c->data.n == (size_t)n);
    const void *valid = validity(d, c, n);
    const void *bits = d->broken ? NULL : pack_bytes(d, c->data.p, n);
    return mk(d, n, c->nulls, 2, valid, bits, NULL, 0, NULL);
}

/* offsets of a string/binary/list column with n rows (the leading 0 is lazy) */
static const void *ex_offsets(Dec *d, Col *c, int64_t n)
{
    int32_t zero = 0;
    if (!c->off.n && buf_put(&c->off, &zero, 4)) d->oom = 1;
    check(d, c->off.n == (size_t)(n + 1) * 4);
    return take(d, &c->off);
}

static struct ArrowArray *ex_string(Dec *d, Col *c, int64_t n)
{
    const void *valid = validity(d, c, n);
    const void *offsets = ex_offsets(d, c, n);
    return mk(d, n, c->nulls, 3, valid, offsets, take(d, &c->data), 0, NULL);
}

static struct ArrowArray *ex_id(Dec *d, Col *c, int64_t n, size_t width)
{
    return ex_fixed(d, c, n, width);
}

static struct ArrowArray *ex_list(Dec *d, Col *c, int64_t n, struct ArrowArray *child)
{
    const void *offsets = ex_offsets(d, c, n);
    return mk(d, n, 0, 2, NULL, offsets, NULL, 1, &child);
}

/* The validity bitmaps of the five VALUE members (string, int, double, bool, bytes) from
 * the type column, in one pass over it; nulls[j] counts the zeros of bitmap j. */
static void pack_value_types(Dec *d, const uint8_t *types, int64_t n, uint8_t **bits,
                             int64_t *nulls)
{
    /* member j is valid for a value of type t: bit j of member_bits[t] (arrays and kvlists
     * have their JSON in the string member and their encoding in the bytes member) */
    static const uint8_t member_bits[256] = {
        [V_STRING] = 1, [V_INT] = 2, [V_DOUBLE] = 4, [V_BOOL] = 8, [V_BYTES] = 16,
        [V_ARRAY] = 1 | 16, [V_KVLIST] = 1 | 16,
    };
    int64_t valid[5] = {0};
    for (int j = 0; j < 5; j++) bits[j] = bitmap(d, n);
    if (bits[0] && bits[1] && bits[2] && bits[3] && bits[4]) {
        for (int64_t i = 0; i < n; i++) {
            unsigned m = member_bits[types[i]];
            uint8_t bit = (uint8_t)(1u << (i & 7));
            for (int j = 0; j < 5; j++) {
                if ((m >> j) & 1) {
                    bits[j][i >> 3] |= bit;
                    valid[j]++;
                }
            }
        }
    }
    for (int j = 0; j < 5; j++) nulls[j] = n - valid[j];
}

/* VALUE fields (type, str, int, double, bool, bytes) into kids[0..5] */
static void ex_values(Dec *d, Values *v, struct ArrowArray **kids)
{
    int64_t n = VALUE_ROWS(*v);
    const uint8_t *types = v->type.data.p ? v->type.data.p : EMPTY;
    uint8_t *valid[5];
    int64_t nulls[5];
    pack_value_types(d, types, n, valid, nulls);
    kids[0] = ex_fixed(d, &v->type, n, 1);
    /* one statement per reservation: both export passes must reserve in the same order */
    const void *str_offsets = ex_offsets(d, &v->str, n);
    kids[1] = mk(d, n, nulls[0], 3, valid[0], str_offsets, take(d, &v->str.data), 0, NULL);
    check(d, v->i.data.n == (size_t)n * 8 && v->d.data.n == (size_t)n * 8);
    kids[2] = mk(d, n, nulls[1], 2, valid[1], take(d, &v->i.data), NULL, 0, NULL);
    kids[3] = mk(d, n, nulls[2], 2, valid[2], take(d, &v->d.data), NULL, 0, NULL);
    check(d, v->b.data.n == (size_t)n);
    const void *bits = d->broken ? NULL : pack_bytes(d, v->b.data.p, n);
    kids[4] = mk(d, n, nulls[3], 2, valid[3], bits, NULL, 0, NULL);
    const void *bin_offsets = ex_offsets(d, &v->bin, n);
    kids[5] = mk(d, n, nulls[4], 3, valid[4], bin_offsets, take(d, &v->bin.data), 0, NULL);
}

/* ATTRIBUTES column for `owners` rows */
static struct ArrowArray *ex_attrs(Dec *d, Attrs *a, int64_t owners)
{
    int64_t n = VALUE_ROWS(a->v);
    struct ArrowArray *kids[7];
    kids[0] = ex_string(d, &a->key, n);
    ex_values(d, &a->v, kids + 1);
    struct ArrowArray *items = mk(d, n, 0, 1, NULL, NULL, NULL, 7, kids);
    return ex_list(d, &a->lists, owners, items);
}

static struct ArrowArray *ex_struct(Dec *d, int64_t n, int nk, struct ArrowArray **kids)
{
    return mk(d, n, 0, 1, NULL, NULL, NULL, nk, kids);
}

#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

static struct ArrowArray *ex_resources(Dec *d)
{
    Envelope *e = &d->c->env;
    int64_t n = ROWS(e->res_dropped, 4);
    int64_t refs = string_rows(&e->ent_schema), ids = string_rows(&e->ent_id_vals);
    int64_t descs = string_rows(&e->ent_desc_vals);
    struct ArrowArray *ref[] = {
        ex_string(d, &e->ent_schema, refs),
        ex_string(d, &e->ent_type, refs),
        ex_list(d, &e->ent_ids, refs, ex_string(d, &e->ent_id_vals, ids)),
        ex_list(d, &e->ent_descs, refs, ex_string(d, &e->ent_desc_vals, descs)),
    };
    struct ArrowArray *cols[] = {
        ex_attrs(d, &e->res_attrs, n),
        ex_fixed(d, &e->res_dropped, n, 4),
        ex_string(d, &e->res_schema, n),
        ex_string(d, &e->res_service, n),
        ex_list(d, &e->res_entities, n, ex_struct(d, refs, COUNT(ref), ref)),
    };
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_scopes(Dec *d)
{
    Envelope *e = &d->c->env;
    int64_t n = ROWS(e->sc_resource, 4);
    struct ArrowArray *cols[] = {
        ex_fixed(d, &e->sc_resource, n, 4),
        ex_string(d, &e->sc_name, n),
        ex_string(d, &e->sc_version, n),
        ex_attrs(d, &e->sc_attrs, n),
        ex_fixed(d, &e->sc_dropped, n, 4),
        ex_string(d, &e->sc_schema, n),
    };
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_spans(Dec *d)
{
    TraceCols *t = &d->c->tr;
    int64_t n = ROWS(t->scope, 4), events = ROWS(t->ev_time, 8), links = ROWS(t->ln_flags, 4);
    struct ArrowArray *event[] = {
        ex_fixed(d, &t->ev_time, events, 8),
        ex_string(d, &t->ev_name, events),
        ex_attrs(d, &t->ev_attrs, events),
        ex_fixed(d, &t->ev_dropped, events, 4),
    };
    struct ArrowArray *link[] = {
        ex_id(d, &t->ln_trace, links, 16),
        ex_id(d, &t->ln_span, links, 8),
        ex_string(d, &t->ln_state, links),
        ex_attrs(d, &t->ln_attrs, links),
        ex_fixed(d, &t->ln_dropped, links, 4),
        ex_fixed(d, &t->ln_flags, links, 4),
    };
    struct ArrowArray *cols[] = {
        ex_fixed(d, &t->scope, n, 4),
        ex_id(d, &t->trace_id, n, 16),
        ex_id(d, &t->span_id, n, 8),
        ex_string(d, &t->state, n),
        ex_id(d, &t->parent, n, 8),
        ex_fixed(d, &t->flags, n, 4),
        ex_string(d, &t->name, n),
        ex_fixed(d, &t->kind, n, 1),
        ex_fixed(d, &t->start, n, 8),
        ex_fixed(d, &t->end, n, 8),
        ex_attrs(d, &t->attrs, n),
        ex_fixed(d, &t->dropped_attrs, n, 4),
        ex_list(d, &t->events, n, ex_struct(d, events, COUNT(event), event)),
        ex_fixed(d, &t->dropped_events, n, 4),
        ex_list(d, &t->links, n, ex_struct(d, links, COUNT(link), link)),
        ex_fixed(d, &t->dropped_links, n, 4),
        ex_string(d, &t->status_msg, n),
        ex_fixed(d, &t->status_code, n, 1),
    };
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_logs(Dec *d)
{
    LogCols *l = &d->c->lg;
    int64_t n = ROWS(l->scope, 4);
    struct ArrowArray *body[6];
    ex_values(d, &l->body, body);
    const void *body_valid = validity(d, &l->body_valid, n);
    struct ArrowArray *cols[] = {
        ex_fixed(d, &l->scope, n, 4),
        ex_fixed(d, &l->time, n, 8),
        ex_fixed(d, &l->observed, n, 8),
        ex_fixed(d, &l->severity, n, 1),
        ex_string(d, &l->severity_text, n),
        mk(d, n, l->body_valid.nulls, 1, body_valid, NULL, NULL, 6, body),
        ex_attrs(d, &l->attrs, n),
        ex_fixed(d, &l->dropped, n, 4),
        ex_fixed(d, &l->flags, n, 4),
        ex_id(d, &l->trace_id, n, 16),
        ex_id(d, &l->span_id, n, 8),
        ex_string(d, &l->event_name, n),
    };
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_metrics(Dec *d)
{
    MetricCols *m = &d->c->mt;
    int64_t n = ROWS(m->scope, 4);
    struct ArrowArray *cols[] = {
        ex_fixed(d, &m->scope, n, 4),
        ex_string(d, &m->name, n),
        ex_string(d, &m->description, n),
        ex_string(d, &m->unit, n),
        ex_fixed(d, &m->type, n, 1),
        ex_fixed(d, &m->temporality, n, 1),
        ex_bool(d, &m->monotonic, n),
        ex_attrs(d, &m->metadata, n),
    };
    return ex_struct(d, n, COUNT(cols), cols);
}

/* the _POINT_COMMON columns into cols[0..5] */
static void ex_point_common(Dec *d, PointCols *c, int64_t n, struct ArrowArray **cols)
{
    ExemplarCols *x = &c->ex;
    int64_t ex = ROWS(x->time, 8);
    struct ArrowArray *exemplar[] = {
        ex_attrs(d, &x->attrs, ex),
        ex_fixed(d, &x->time, ex, 8),
        ex_fixed(d, &x->vtype, ex, 1),
        ex_fixed(d, &x->dbl, ex, 8),
        ex_fixed(d, &x->i64, ex, 8),
        ex_id(d, &x->span_id, ex, 8),
        ex_id(d, &x->trace_id, ex, 16),
    };
    cols[0] = ex_fixed(d, &c->metric, n, 4);
    cols[1] = ex_attrs(d, &c->attrs, n);
    cols[2] = ex_fixed(d, &c->start, n, 8);
    cols[3] = ex_fixed(d, &c->time, n, 8);
    cols[4] = ex_fixed(d, &c->flags, n, 4);
    cols[5] = ex_list(d, &c->exemplars, n, ex_struct(d, ex, COUNT(exemplar), exemplar));
}

static struct ArrowArray *ex_number_points(Dec *d, NumberCols *p)
{
    int64_t n = ROWS(p->c.metric, 4);
    struct ArrowArray *cols[9];
    ex_point_common(d, &p->c, n, cols);
    cols[6] = ex_fixed(d, &p->vtype, n, 1);
    cols[7] = ex_fixed(d, &p->dbl, n, 8);
    cols[8] = ex_fixed(d, &p->i64, n, 8);
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_histogram_points(Dec *d, HistogramCols *p)
{
    int64_t n = ROWS(p->c.metric, 4);
    struct ArrowArray *cols[12];
    ex_point_common(d, &p->c, n, cols);
    int64_t buckets = ROWS(p->bucket_vals, 8), bounds = ROWS(p->bound_vals, 8);
    cols[6] = ex_fixed(d, &p->count, n, 8);
    cols[7] = ex_fixed(d, &p->sum, n, 8);
    cols[8] = ex_list(d, &p->buckets, n, ex_fixed(d, &p->bucket_vals, buckets, 8));
    cols[9] = ex_list(d, &p->bounds, n, ex_fixed(d, &p->bound_vals, bounds, 8));
    cols[10] = ex_fixed(d, &p->min, n, 8);
    cols[11] = ex_fixed(d, &p->max, n, 8);
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_exp_points(Dec *d, ExpHistogramCols *p)
{
    int64_t n = ROWS(p->c.metric, 4);
    struct ArrowArray *cols[17];
    ex_point_common(d, &p->c, n, cols);
    int64_t pos = ROWS(p->pos_vals, 8), neg = ROWS(p->neg_vals, 8);
    cols[6] = ex_fixed(d, &p->count, n, 8);
    cols[7] = ex_fixed(d, &p->sum, n, 8);
    cols[8] = ex_fixed(d, &p->scale, n, 4);
    cols[9] = ex_fixed(d, &p->zero_count, n, 8);
    cols[10] = ex_fixed(d, &p->pos_offset, n, 4);
    cols[11] = ex_list(d, &p->pos, n, ex_fixed(d, &p->pos_vals, pos, 8));
    cols[12] = ex_fixed(d, &p->neg_offset, n, 4);
    cols[13] = ex_list(d, &p->neg, n, ex_fixed(d, &p->neg_vals, neg, 8));
    cols[14] = ex_fixed(d, &p->min, n, 8);
    cols[15] = ex_fixed(d, &p->max, n, 8);
    cols[16] = ex_fixed(d, &p->zero_threshold, n, 8);
    return ex_struct(d, n, COUNT(cols), cols);
}

static struct ArrowArray *ex_summary_points(Dec *d, SummaryCols *p)
{
    int64_t n = ROWS(p->c.metric, 4);
    struct ArrowArray *cols[9];
    ex_point_common(d, &p->c, n, cols);
    int64_t q = ROWS(p->q_value, 8);
    struct ArrowArray *quantile[] = {
        ex_fixed(d, &p->q_quantile, q, 8),
        ex_fixed(d, &p->q_value, q, 8),
    };
    cols[6] = ex_fixed(d, &p->count, n, 8);
    cols[7] = ex_fixed(d, &p->sum, n, 8);
    cols[8] = ex_list(d, &p->quantiles, n, ex_struct(d, q, COUNT(quantile), quantile));
    return ex_struct(d, n, COUNT(cols), cols);
}

/* ---------------------------------------------------------------------------------------
 * Python module
 */
static void capsule_free(PyObject *capsule)
{
    struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (!a) {
        PyErr_Clear();
        return;
    }
    if (a->release) a->release(a);
    free(a);
}

enum { SIG_TRACES, SIG_LOGS, SIG_METRICS };

/* The tables of a signal: resources, scopes, then otlp.batch.RECORD_TABLES[signal]. Tables
 * without rows are left out (NULL): importing an array costs ~0.3 us per node in pyarrow, and
 * most requests fill only some of the metric point tables. */
static int export_tables(Dec *d, int signal, struct ArrowArray **tables)
{
    Columns *c = d->c;
    int n = 0;
    tables[n++] = ROWS(c->env.res_dropped, 4) ? ex_resources(d) : NULL;
    tables[n++] = ROWS(c->env.sc_resource, 4) ? ex_scopes(d) : NULL;
    if (signal == SIG_TRACES) {
        tables[n++] = ROWS(c->tr.scope, 4) ? ex_spans(d) : NULL;
    } else if (signal == SIG_LOGS) {
        tables[n++] = ROWS(c->lg.scope, 4) ? ex_logs(d) : NULL;
    } else {
        MetricCols *m = &c->mt;
        tables[n++] = ROWS(m->scope, 4) ? ex_metrics(d) : NULL;
        tables[n++] = ROWS(m->gauge.c.metric, 4) ? ex_number_points(d, &m->gauge) : NULL;
        tables[n++] = ROWS(m->sum.c.metric, 4) ? ex_number_points(d, &m->sum) : NULL;
        tables[n++] = ROWS(m->hist.c.metric, 4) ? ex_histogram_points(d, &m->hist) : NULL;
        tables[n++] = ROWS(m->exp.c.metric, 4) ? ex_exp_points(d, &m->exp) : NULL;
        tables[n++] = ROWS(m->summary.c.metric, 4) ? ex_summary_points(d, &m->summary) : NULL;
    }
    return n;
}

/* Columns are scratch memory reused by the next call (the GIL serialises calls); buffers
 * that grew beyond this are freed after a request so one huge request is not kept around. */
static Columns *scratch;
static int scratch_busy;
#define SCRATCH_KEEP (1u << 20)
#define NCOLS (sizeof(Columns) / sizeof(Col))

/* Parses `body`; returns a tuple with an "arrow_array" capsule per table (None for a table
 * without rows, see export_tables), or None: let the Python decoder judge this request. */
static PyObject *decode(PyObject *args, int signal)
{
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    Columns *c = scratch_busy ? NULL : scratch;
    if (!c && !(c = calloc(1, sizeof(Columns)))) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    if (!scratch_busy && !scratch) scratch = c;
    int own = c != scratch;
    scratch_busy |= !own;

    static const RecordParser parsers[] = {parse_span, parse_log, parse_metric};
    Dec d = {.c = c};
    memset(&sizes, 0, sizeof sizes);
    Bytes body = {view.len ? view.buf : EMPTY, (size_t)view.len};
    int rc = parse_request(&d, body, parsers[signal]);
    if (rc == OK && !columns_text_ok(c)) rc = DEFER;
    PyBuffer_Release(&view);

    struct ArrowArray *tables[8] = {0};
    int ntables = 0;
    void *raw = NULL;
    size_t cap = 0;
    if (rc == OK) {
        /* pass 1 sizes the block, pass 2 fills it */
        d.used = sizeof(Arena);
        export_tables(&d, signal, tables);
        if (!d.broken && !d.oom && (raw = block_get(d.used + 64, &cap))) {
            d.base = (uint8_t *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
            Arena *arena = (Arena *)d.base;
            arena->raw = raw;
            arena->cap = cap;
            atomic_init(&arena->refs, 1); /* held until the tables are handed out */
            d.used = sizeof(Arena);
            ntables = export_tables(&d, signal, tables);
        } else if (!d.broken) {
            d.oom = 1;
        }
    }
    reset_cols((Col *)c, NCOLS, SCRATCH_KEEP);
    if (own) {
        reset_cols((Col *)c, NCOLS, 0);
        free(c);
    } else {
        scratch_busy = 0;
    }

    /* The tables' root structs move to their own memory: a capsule may outlive the block. */
    PyObject *result = raw && !d.oom ? PyTuple_New(ntables) : NULL;
    for (int i = 0; i < ntables; i++) {
        PyObject *item = NULL;
        if (!tables[i]) {
            item = Py_NewRef(Py_None);
        } else {
            struct ArrowArray *root = result ? malloc(sizeof *root) : NULL;
            if (root) {
                *root = *tables[i];
                tables[i]->release = NULL;
                if (!(item = PyCapsule_New(root, "arrow_array", capsule_free))) {
                    root->release(root);
                    free(root);
                }
            } else {
                tables[i]->release(tables[i]);
            }
        }
        if (item && result)
            PyTuple_SET_ITEM(result, i, item);
        else {
            Py_XDECREF(item);
            Py_CLEAR(result);
        }
    }
    if (raw) arena_unref((Arena *)d.base);
    if (result) return result;
    if (PyErr_Occurred()) return NULL;
    if (rc == NOMEM || d.oom) return PyErr_NoMemory();
    if (d.broken) {
        PyErr_SetString(PyExc_SystemError, "otlp._wire: inconsistent column lengths");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The address of a capsule's ArrowArray, for pyarrow's _import_from_c (which takes the
 * schema as an object: no schema export and re-parse per request). */
static PyObject *address(PyObject *self, PyObject *capsule)
{
    void *a = PyCapsule_GetPointer(capsule, "arrow_array");
    return a ? PyLong_FromVoidPtr(a) : NULL;
}

_Static_assert(sizeof(Columns) % sizeof(Col) == 0, "Columns holds only Col members");

static PyObject *decode_traces(PyObject *self, PyObject *args) { return decode(args, SIG_TRACES); }
static PyObject *decode_logs(PyObject *self, PyObject *args) { return decode(args, SIG_LOGS); }
static PyObject *decode_metrics(PyObject *self, PyObject *args)
{
    return decode(args, SIG_METRICS);
}

/* Where the last deferred request was given up on: a line of this file (0: none yet). */
static PyObject *last_sizes(PyObject *self, PyObject *unused)
{
    return Py_BuildValue("(KKKK)", (unsigned long long)sizes.list, (unsigned long long)sizes.key,
                         (unsigned long long)sizes.value, (unsigned long long)sizes.nested);
}

static PyObject *last_deferral(PyObject *self, PyObject *unused)
{
    return PyLong_FromLong(deferral_line);
}

/* Test hook: the Go JSON rendering of a float (None when Go's json.Marshal would fail). */
static PyObject *py_go_float(PyObject *self, PyObject *arg)
{
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    Dec d = {0};
    Buf out = {0};
    if (go_float(&d, &out, x) != OK) {
        free(out.p);
        return PyErr_NoMemory();
    }
    PyObject *result = d.unsupported ? Py_NewRef(Py_None)
                                     : PyUnicode_FromStringAndSize((char *)out.p, (Py_ssize_t)out.n);
    free(out.p);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_traces", decode_traces, METH_VARARGS,
     "ExportTraceServiceRequest bytes -> (resources, scopes, spans) arrow_array capsules, or "
     "None to defer to the Python decoder."},
    {"decode_logs", decode_logs, METH_VARARGS,
     "ExportLogsServiceRequest bytes -> (resources, scopes, logs) capsules, or None."},
    {"decode_metrics", decode_metrics, METH_VARARGS,
     "ExportMetricsServiceRequest bytes -> (resources, scopes, metrics, gauge, sum, histogram, "
     "exponential_histogram, summary) capsules, or None."},
    {"address", address, METH_O, "The ArrowArray address held by a decode_* capsule."},
    {"last_sizes", last_sizes, METH_NOARGS,
     "(attributes in the longest list, longest key, longest value, longest array/kvlist "
     "encoding) of the last request decoded, in bytes where not a count."},
    {"last_deferral", last_deferral, METH_NOARGS,
     "The line of _wire.c that last returned None (why a request took the Python decoder)."},
    {"go_float", py_go_float, METH_O, "A float as Go's encoding/json writes it (test hook)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "otlp._wire",
    "Compiled OTLP protobuf decoder writing Arrow columns (see otlp/decode.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__wire(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_HASH", WIRE_SOURCE_HASH) < 0) Py_CLEAR(m);
    return m;
}
