/*
 * otlp._encode: a compiled OTLP protobuf encoder reading the columnar batch's Arrow buffers.
 *
 * Why: the Python encoder (otlp/encode.py) builds upb messages row by row and costs ~18 us per
 * span, an order of magnitude more than decoding; forwarding (OTLP in -> OTLP out) pays both.
 * This module walks the Arrow arrays of otlp/batch.py (handed over through the Arrow C data
 * interface, no copy) and writes the Export*ServiceRequest bytes directly.
 *
 * Contract with otlp/encode.py: the output is byte-identical to the Python encoder's, which
 * is the specification (tests compare the two). That means upb's serialization: fields in
 * field-number order, proto3 implicit-presence scalars left out when zero (doubles compared
 * bitwise, so -0.0 and NaN are written), explicit-presence fields (oneofs, `optional`)
 * written whenever set, and a nested message written only when the Python encoder sets it
 * (see encode.py: "canonical output"). Inputs the Python encoder would treat in some
 * pathological way (an out-of-range scope/resource/metric index, a data point whose table
 * disagrees with its metric's type) raise ValueError; otlp/encode_fast.py then defers to it.
 *
 * Layout: Arrow access helpers, the output buffer and wire helpers, attribute/AnyValue
 * writers, one writer per message type, the request envelope, then the module.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* sha256 of this file (setup.py), so that a test can tell a stale build from this source */
#ifndef ENCODE_SOURCE_HASH
#define ENCODE_SOURCE_HASH "unknown"
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

/* otlp/batch.py V_* (AnyValue kinds), M_* (metric data kinds), N_* (number value kinds) */
enum { V_EMPTY, V_STRING, V_BOOL, V_INT, V_DOUBLE, V_ARRAY, V_KVLIST, V_BYTES };
enum { M_EMPTY, M_GAUGE, M_SUM, M_HISTOGRAM, M_EXPONENTIAL_HISTOGRAM, M_SUMMARY };
enum { N_NONE, N_DOUBLE, N_INT };

/* ---------------------------------------------------------------------------------------
 * Column views. `off` is the absolute index of the view's row 0 in the array's buffers:
 * a struct's children inherit the struct's offset (Arrow slices structs without slicing
 * their children), a list's values do not (list offsets are absolute).
 */
typedef struct {
    const struct ArrowArray *a;
    const uint8_t *valid; /* NULL: no nulls */
    int64_t off;
    const uint8_t *b1; /* values, offsets or (bool) bits */
    const uint8_t *b2; /* string/binary data */
} Col;

static Col col_of(const struct ArrowArray *a, int64_t parent_off)
{
    Col c;
    c.a = a;
    c.off = a->offset + parent_off;
    c.valid = (a->null_count != 0 && a->n_buffers > 0) ? a->buffers[0] : NULL;
    c.b1 = a->n_buffers > 1 ? a->buffers[1] : NULL;
    c.b2 = a->n_buffers > 2 ? a->buffers[2] : NULL;
    return c;
}

static inline Col child(Col parent, int k) { return col_of(parent.a->children[k], parent.off); }
static inline Col list_values(Col list) { return col_of(list.a->children[0], 0); }

static inline int bit(const uint8_t *bits, int64_t i) { return (bits[i >> 3] >> (i & 7)) & 1; }
static inline int is_valid(Col c, int64_t i) { return !c.valid || bit(c.valid, c.off + i); }

/* null reads as zero, as the Python encoder's `value or 0` does */
static inline uint64_t get_u64(Col c, int64_t i)
{
    uint64_t v;
    if (!is_valid(c, i)) return 0;
    memcpy(&v, c.b1 + 8 * (c.off + i), 8);
    return v;
}
static inline uint32_t get_u32(Col c, int64_t i)
{
    uint32_t v;
    if (!is_valid(c, i)) return 0;
    memcpy(&v, c.b1 + 4 * (c.off + i), 4);
    return v;
}
static inline int32_t get_i32(Col c, int64_t i) { return (int32_t)get_u32(c, i); }
static inline int8_t get_i8(Col c, int64_t i)
{
    return is_valid(c, i) ? ((const int8_t *)c.b1)[c.off + i] : 0;
}
static inline int get_bool(Col c, int64_t i) { return is_valid(c, i) && bit(c.b1, c.off + i); }

/* string/binary (int32 offsets); a null reads as empty */
static inline const uint8_t *get_str(Col c, int64_t i, int64_t *len)
{
    int32_t start, stop;
    if (!is_valid(c, i)) {
        *len = 0;
        return NULL;
    }
    memcpy(&start, c.b1 + 4 * (c.off + i), 4);
    memcpy(&stop, c.b1 + 4 * (c.off + i + 1), 4);
    *len = stop - start;
    return c.b2 + start;
}

/* fixed_size_binary(width): a null reads as empty */
static inline const uint8_t *get_fixed(Col c, int64_t i, int width, int64_t *len)
{
    if (!is_valid(c, i)) {
        *len = 0;
        return NULL;
    }
    *len = width;
    return c.b1 + (int64_t)width * (c.off + i);
}

/* a list's range in its values; a null list is empty */
static inline void get_range(Col c, int64_t i, int64_t *start, int64_t *stop)
{
    int32_t s, e;
    if (!is_valid(c, i)) {
        *start = *stop = 0;
        return;
    }
    memcpy(&s, c.b1 + 4 * (c.off + i), 4);
    memcpy(&e, c.b1 + 4 * (c.off + i + 1), 4);
    *start = s;
    *stop = e;
}

/* ---------------------------------------------------------------------------------------
 * Output buffer and wire helpers. Writes after an allocation failure are dropped; the
 * caller checks `failed` once at the end.
 */
typedef struct {
    uint8_t *p;
    size_t len, cap;
    int failed;
} Buf;

static int grow(Buf *b, size_t extra)
{
    size_t cap = b->cap ? b->cap : 4096;
    uint8_t *p;
    if (b->failed) return -1;
    while (cap < b->len + extra) cap *= 2;
    p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

#define ENSURE(b, n) \
    if ((b)->len + (n) > (b)->cap && grow((b), (n))) return

static inline int varint_size(uint64_t v)
{
    int n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline void put_varint(Buf *b, uint64_t v)
{
    ENSURE(b, 10);
    while (v >= 0x80) {
        b->p[b->len++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->len++] = (uint8_t)v;
}

/* tags are (field << 3 | wire type) and written as varints (field 16+ takes two bytes) */
#define put_tag put_varint

static inline void put_raw(Buf *b, const void *data, size_t n)
{
    ENSURE(b, n);
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
}

static inline void put_fixed64(Buf *b, uint64_t v)
{
    ENSURE(b, 8);
    memcpy(b->p + b->len, &v, 8); /* little-endian host: checked at import */
    b->len += 8;
}

static inline void put_fixed32(Buf *b, uint32_t v)
{
    ENSURE(b, 4);
    memcpy(b->p + b->len, &v, 4);
    b->len += 4;
}

static inline void put_bytes(Buf *b, uint32_t tag, const void *data, int64_t n)
{
    put_tag(b, tag);
    put_varint(b, (uint64_t)n);
    put_raw(b, data, (size_t)n);
}

/* implicit-presence fields: left out when zero / empty */
static inline void opt_bytes(Buf *b, uint32_t tag, const void *data, int64_t n)
{
    if (n) put_bytes(b, tag, data, n);
}
static inline void opt_varint(Buf *b, uint32_t tag, uint64_t v)
{
    if (v) {
        put_tag(b, tag);
        put_varint(b, v);
    }
}
static inline void opt_fixed64(Buf *b, uint32_t tag, uint64_t v)
{
    if (v) {
        put_tag(b, tag);
        put_fixed64(b, v);
    }
}
static inline void opt_fixed32(Buf *b, uint32_t tag, uint32_t v)
{
    if (v) {
        put_tag(b, tag);
        put_fixed32(b, v);
    }
}
/* enums are int32 on the wire: negative values sign-extend to ten bytes */
static inline void opt_enum(Buf *b, uint32_t tag, int32_t v) { opt_varint(b, tag, (uint64_t)(int64_t)v); }
static inline uint64_t zigzag32(int32_t v) { return (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)); }

/* Nested messages: the tag, then `reserve` bytes for the length, which end_msg() fills in
 * (moving the content when the length needs another number of bytes). The reserve is a
 * guess of the usual size so that the move is rare. */
static inline size_t begin_msg(Buf *b, uint32_t tag, int reserve)
{
    put_tag(b, tag);
    if (b->len + (size_t)reserve > b->cap && grow(b, (size_t)reserve)) return b->len;
    b->len += reserve;
    return b->len;
}

static void end_msg(Buf *b, size_t start, int reserve)
{
    size_t len, i;
    int need;
    if (b->failed) return;
    len = b->len - start;
    need = varint_size(len);
    if (need != reserve) {
        if (need > reserve) ENSURE(b, (size_t)(need - reserve));
        memmove(b->p + start - reserve + need, b->p + start, len);
        b->len = b->len - reserve + need;
    }
    i = start - reserve;
    while (len >= 0x80) {
        b->p[i++] = (uint8_t)(len | 0x80);
        len >>= 7;
    }
    b->p[i] = (uint8_t)len;
}

/* ---------------------------------------------------------------------------------------
 * AnyValue and KeyValue (ATTRIBUTE = key + the VALUE fields, otlp/batch.py)
 */
typedef struct {
    Col type, str, i64, dbl, boolean, bytes;
} ValueCols;

static ValueCols value_cols(Col s, int first)
{
    ValueCols v;
    v.type = child(s, first);
    v.str = child(s, first + 1);
    v.i64 = child(s, first + 2);
    v.dbl = child(s, first + 3);
    v.boolean = child(s, first + 4);
    v.bytes = child(s, first + 5);
    return v;
}

/* The serialized AnyValue's size (0: an empty value, left out) */
static int64_t anyvalue_size(const ValueCols *v, int64_t i)
{
    int64_t n;
    switch (get_i8(v->type, i)) {
    case V_STRING:
        get_str(v->str, i, &n);
        return 1 + varint_size(n) + n;
    case V_BYTES:
        get_str(v->bytes, i, &n);
        return 1 + varint_size(n) + n;
    case V_INT:
        return 1 + varint_size(get_u64(v->i64, i));
    case V_DOUBLE:
        return 9;
    case V_BOOL:
        return 2;
    case V_ARRAY:
    case V_KVLIST:
        /* kept serialized */
        get_str(v->bytes, i, &n);
        return n;
    default:
        return 0;
    }
}

static void put_anyvalue(Buf *b, const ValueCols *v, int64_t i)
{
    int64_t n;
    const uint8_t *data;
    switch (get_i8(v->type, i)) {
    case V_STRING:
        data = get_str(v->str, i, &n);
        put_bytes(b, 0x0A, data, n);
        break;
    case V_BYTES:
        data = get_str(v->bytes, i, &n);
        put_bytes(b, 0x3A, data, n);
        break;
    case V_INT:
        put_tag(b, 0x18);
        put_varint(b, get_u64(v->i64, i));
        break;
    case V_DOUBLE:
        put_tag(b, 0x21);
        put_fixed64(b, get_u64(v->dbl, i));
        break;
    case V_BOOL:
        put_tag(b, 0x10);
        put_varint(b, (uint64_t)get_bool(v->boolean, i));
        break;
    case V_ARRAY:
    case V_KVLIST:
        data = get_str(v->bytes, i, &n);
        put_raw(b, data, (size_t)n);
        break;
    default:
        break;
    }
}

typedef struct {
    Col list, key;
    ValueCols value;
} AttrCols;

static AttrCols attr_cols(Col list)
{
    AttrCols a;
    Col items = list_values(list);
    a.list = list;
    a.key = child(items, 0);
    a.value = value_cols(items, 1);
    return a;
}

/* Row i's attributes as repeated KeyValue `tag`: the key when non-empty, the value when
 * non-empty (canonical form, as otlp.anyvalue.keyvalues_to_bytes writes them). */
static void put_attrs(Buf *b, const AttrCols *a, int64_t i, uint32_t tag)
{
    int64_t j, stop, klen, vlen, size;
    const uint8_t *key;
    get_range(a->list, i, &j, &stop);
    for (; j < stop; j++) {
        key = get_str(a->key, j, &klen);
        vlen = anyvalue_size(&a->value, j);
        size = (klen ? 1 + varint_size(klen) + klen : 0) + (vlen ? 1 + varint_size(vlen) + vlen : 0);
        put_tag(b, tag);
        put_varint(b, (uint64_t)size);
        opt_bytes(b, 0x0A, key, klen);
        if (vlen) {
            put_tag(b, 0x12);
            put_varint(b, (uint64_t)vlen);
            put_anyvalue(b, &a->value, j);
        }
    }
}

static inline int has_attrs(const AttrCols *a, int64_t i)
{
    int64_t start, stop;
    get_range(a->list, i, &start, &stop);
    return stop > start;
}

/* ---------------------------------------------------------------------------------------
 * Resource and InstrumentationScope (otlp/batch.py RESOURCES, SCOPES)
 */
typedef struct {
    AttrCols attrs;
    Col dropped, schema_url;
    int has_refs;
    Col refs, ref_schema, ref_type, ref_ids, ref_id_items, ref_descs, ref_desc_items;
} ResourceCols;

static ResourceCols resource_cols(Col t)
{
    ResourceCols r;
    r.attrs = attr_cols(child(t, 0));
    r.dropped = child(t, 1);
    r.schema_url = child(t, 2);
    r.has_refs = t.a->n_children > 4;
    if (r.has_refs) {
        Col items;
        r.refs = child(t, 4);
        items = list_values(r.refs);
        r.ref_schema = child(items, 0);
        r.ref_type = child(items, 1);
        r.ref_ids = child(items, 2);
        r.ref_id_items = list_values(r.ref_ids);
        r.ref_descs = child(items, 3);
        r.ref_desc_items = list_values(r.ref_descs);
    }
    return r;
}

/* repeated string: every element written, empty ones too */
static void put_strings(Buf *b, uint32_t tag, Col list, Col items, int64_t i)
{
    int64_t j, stop, n;
    const uint8_t *s;
    get_range(list, i, &j, &stop);
    for (; j < stop; j++) {
        s = get_str(items, j, &n);
        put_bytes(b, tag, s, n);
    }
}

static void put_entity_refs(Buf *b, const ResourceCols *r, int64_t i)
{
    int64_t j, stop, n;
    const uint8_t *s;
    size_t m;
    get_range(r->refs, i, &j, &stop);
    for (; j < stop; j++) {
        m = begin_msg(b, 0x1A, 1);
        s = get_str(r->ref_schema, j, &n);
        opt_bytes(b, 0x0A, s, n);
        s = get_str(r->ref_type, j, &n);
        opt_bytes(b, 0x12, s, n);
        put_strings(b, 0x1A, r->ref_ids, r->ref_id_items, j);
        put_strings(b, 0x22, r->ref_descs, r->ref_desc_items, j);
        end_msg(b, m, 1);
    }
}

/* Resource (field 1 of Resource*), written only when it has content */
static void put_resource(Buf *b, const ResourceCols *r, int64_t i)
{
    uint32_t dropped = get_u32(r->dropped, i);
    int refs = 0;
    size_t m;
    if (r->has_refs) {
        int64_t start, stop;
        get_range(r->refs, i, &start, &stop);
        refs = stop > start;
    }
    if (!has_attrs(&r->attrs, i) && !dropped && !refs) return;
    m = begin_msg(b, 0x0A, 2);
    put_attrs(b, &r->attrs, i, 0x0A);
    opt_varint(b, 0x10, dropped);
    if (refs) put_entity_refs(b, r, i);
    end_msg(b, m, 2);
}

typedef struct {
    Col resource_index, name, version, dropped, schema_url;
    AttrCols attrs;
} ScopeCols;

static ScopeCols scope_cols(Col t)
{
    ScopeCols s;
    s.resource_index = child(t, 0);
    s.name = child(t, 1);
    s.version = child(t, 2);
    s.attrs = attr_cols(child(t, 3));
    s.dropped = child(t, 4);
    s.schema_url = child(t, 5);
    return s;
}

/* InstrumentationScope (field 1 of Scope*), written only when it has content */
static void put_scope(Buf *b, const ScopeCols *s, int64_t i)
{
    int64_t nlen, vlen;
    const uint8_t *name = get_str(s->name, i, &nlen);
    const uint8_t *version = get_str(s->version, i, &vlen);
    uint32_t dropped = get_u32(s->dropped, i);
    size_t m;
    if (!nlen && !vlen && !dropped && !has_attrs(&s->attrs, i)) return;
    m = begin_msg(b, 0x0A, 1);
    opt_bytes(b, 0x0A, name, nlen);
    opt_bytes(b, 0x12, version, vlen);
    put_attrs(b, &s->attrs, i, 0x1A);
    opt_varint(b, 0x20, dropped);
    end_msg(b, m, 1);
}

/* ---------------------------------------------------------------------------------------
 * Spans (otlp/batch.py SPANS, EVENT, LINK)
 */
typedef struct {
    Col trace_id, span_id, trace_state, parent_span_id, flags, name, kind, start, end;
    Col dropped_attrs, dropped_events, dropped_links, status_message, status_code;
    AttrCols attrs;
    Col events, ev_time, ev_name, ev_dropped;
    AttrCols ev_attrs;
    Col links, ln_trace_id, ln_span_id, ln_state, ln_dropped, ln_flags;
    AttrCols ln_attrs;
} SpanCols;

static void span_cols(SpanCols *c, Col t)
{
    Col ev, ln;
    c->trace_id = child(t, 1);
    c->span_id = child(t, 2);
    c->trace_state = child(t, 3);
    c->parent_span_id = child(t, 4);
    c->flags = child(t, 5);
    c->name = child(t, 6);
    c->kind = child(t, 7);
    c->start = child(t, 8);
    c->end = child(t, 9);
    c->attrs = attr_cols(child(t, 10));
    c->dropped_attrs = child(t, 11);
    c->events = child(t, 12);
    c->dropped_events = child(t, 13);
    c->links = child(t, 14);
    c->dropped_links = child(t, 15);
    c->status_message = child(t, 16);
    c->status_code = child(t, 17);
    ev = list_values(c->events);
    c->ev_time = child(ev, 0);
    c->ev_name = child(ev, 1);
    c->ev_attrs = attr_cols(child(ev, 2));
    c->ev_dropped = child(ev, 3);
    ln = list_values(c->links);
    c->ln_trace_id = child(ln, 0);
    c->ln_span_id = child(ln, 1);
    c->ln_state = child(ln, 2);
    c->ln_attrs = attr_cols(child(ln, 3));
    c->ln_dropped = child(ln, 4);
    c->ln_flags = child(ln, 5);
}

static void put_event(Buf *b, const SpanCols *c, int64_t j)
{
    int64_t n;
    const uint8_t *s;
    size_t m = begin_msg(b, 0x5A, 1);
    opt_fixed64(b, 0x09, get_u64(c->ev_time, j));
    s = get_str(c->ev_name, j, &n);
    opt_bytes(b, 0x12, s, n);
    put_attrs(b, &c->ev_attrs, j, 0x1A);
    opt_varint(b, 0x20, get_u32(c->ev_dropped, j));
    end_msg(b, m, 1);
}

static void put_link(Buf *b, const SpanCols *c, int64_t j)
{
    int64_t n;
    const uint8_t *s;
    size_t m = begin_msg(b, 0x6A, 1);
    s = get_fixed(c->ln_trace_id, j, 16, &n);
    opt_bytes(b, 0x0A, s, n);
    s = get_fixed(c->ln_span_id, j, 8, &n);
    opt_bytes(b, 0x12, s, n);
    s = get_str(c->ln_state, j, &n);
    opt_bytes(b, 0x1A, s, n);
    put_attrs(b, &c->ln_attrs, j, 0x22);
    opt_varint(b, 0x28, get_u32(c->ln_dropped, j));
    opt_fixed32(b, 0x35, get_u32(c->ln_flags, j));
    end_msg(b, m, 1);
}

/* Span (field 2 of ScopeSpans) */
static void put_span(Buf *b, const void *cols, int64_t i)
{
    const SpanCols *c = cols;
    int64_t n, j, stop;
    const uint8_t *s;
    int8_t code;
    size_t m = begin_msg(b, 0x12, 2);
    s = get_fixed(c->trace_id, i, 16, &n);
    opt_bytes(b, 0x0A, s, n);
    s = get_fixed(c->span_id, i, 8, &n);
    opt_bytes(b, 0x12, s, n);
    s = get_str(c->trace_state, i, &n);
    opt_bytes(b, 0x1A, s, n);
    s = get_fixed(c->parent_span_id, i, 8, &n);
    opt_bytes(b, 0x22, s, n);
    s = get_str(c->name, i, &n);
    opt_bytes(b, 0x2A, s, n);
    opt_enum(b, 0x30, get_i8(c->kind, i));
    opt_fixed64(b, 0x39, get_u64(c->start, i));
    opt_fixed64(b, 0x41, get_u64(c->end, i));
    put_attrs(b, &c->attrs, i, 0x4A);
    opt_varint(b, 0x50, get_u32(c->dropped_attrs, i));
    get_range(c->events, i, &j, &stop);
    for (; j < stop; j++) put_event(b, c, j);
    opt_varint(b, 0x60, get_u32(c->dropped_events, i));
    get_range(c->links, i, &j, &stop);
    for (; j < stop; j++) put_link(b, c, j);
    opt_varint(b, 0x70, get_u32(c->dropped_links, i));
    /* Status: message (2), code (3); left out when both are empty */
    s = get_str(c->status_message, i, &n);
    code = get_i8(c->status_code, i);
    if (n || code) {
        size_t st = begin_msg(b, 0x7A, 1);
        opt_bytes(b, 0x12, s, n);
        opt_enum(b, 0x18, code);
        end_msg(b, st, 1);
    }
    opt_fixed32(b, 0x85, get_u32(c->flags, i)); /* field 16: tag 0x85 0x01 */
    end_msg(b, m, 2);
}

/* ---------------------------------------------------------------------------------------
 * Log records (otlp/batch.py LOGS)
 */
typedef struct {
    Col time, observed, severity_number, severity_text, body, dropped, flags;
    Col trace_id, span_id, event_name;
    ValueCols body_value;
    AttrCols attrs;
} LogCols;

static void log_cols(LogCols *c, Col t)
{
    c->time = child(t, 1);
    c->observed = child(t, 2);
    c->severity_number = child(t, 3);
    c->severity_text = child(t, 4);
    c->body = child(t, 5);
    c->body_value = value_cols(c->body, 0);
    c->attrs = attr_cols(child(t, 6));
    c->dropped = child(t, 7);
    c->flags = child(t, 8);
    c->trace_id = child(t, 9);
    c->span_id = child(t, 10);
    c->event_name = child(t, 11);
}

/* LogRecord (field 2 of ScopeLogs) */
static void put_log(Buf *b, const void *cols, int64_t i)
{
    const LogCols *c = cols;
    int64_t n;
    const uint8_t *s;
    size_t m = begin_msg(b, 0x12, 2);
    opt_fixed64(b, 0x09, get_u64(c->time, i));
    opt_enum(b, 0x10, get_i8(c->severity_number, i));
    s = get_str(c->severity_text, i, &n);
    opt_bytes(b, 0x1A, s, n);
    if (is_valid(c->body, i)) {
        /* `optional`: a present body is written even when empty */
        put_tag(b, 0x2A);
        put_varint(b, (uint64_t)anyvalue_size(&c->body_value, i));
        put_anyvalue(b, &c->body_value, i);
    }
    put_attrs(b, &c->attrs, i, 0x32);
    opt_varint(b, 0x38, get_u32(c->dropped, i));
    opt_fixed32(b, 0x45, get_u32(c->flags, i));
    s = get_fixed(c->trace_id, i, 16, &n);
    opt_bytes(b, 0x4A, s, n);
    s = get_fixed(c->span_id, i, 8, &n);
    opt_bytes(b, 0x52, s, n);
    opt_fixed64(b, 0x59, get_u64(c->observed, i));
    s = get_str(c->event_name, i, &n);
    opt_bytes(b, 0x62, s, n);
    end_msg(b, m, 2);
}

/* ---------------------------------------------------------------------------------------
 * Grouping: rows of a child table under the parent row they point at, in table order
 * (a counting sort). These run without the GIL, so failures are returned as codes and
 * turned into exceptions by the caller (raise_for()).
 */
enum { OK = 0, NO_MEMORY = 1, BAD_INDEX = 2, BAD_TYPE = 3 };
typedef struct {
    int64_t *first; /* n_parents + 1 */
    int64_t *rows;  /* child rows, grouped */
} Groups;

static void groups_free(Groups *g)
{
    free(g->first);
    free(g->rows);
    g->first = g->rows = NULL;
}

static int group_rows(Groups *g, Col index, int64_t n_children, int64_t n_parents)
{
    int64_t i, *next;
    g->first = calloc((size_t)n_parents + 1, sizeof(int64_t));
    g->rows = malloc(((size_t)n_children + 1) * sizeof(int64_t));
    next = malloc(((size_t)n_parents + 1) * sizeof(int64_t));
    if (!g->first || !g->rows || !next) {
        free(next);
        groups_free(g);
        return NO_MEMORY;
    }
    for (i = 0; i < n_children; i++) {
        int32_t p = get_i32(index, i);
        if (!is_valid(index, i) || p < 0 || p >= n_parents) {
            free(next);
            groups_free(g);
            return BAD_INDEX;
        }
        g->first[p + 1]++;
    }
    for (i = 0; i < n_parents; i++) g->first[i + 1] += g->first[i];
    memcpy(next, g->first, (size_t)n_parents * sizeof(int64_t));
    for (i = 0; i < n_children; i++) g->rows[next[get_i32(index, i)]++] = i;
    free(next);
    return OK;
}

/* ---------------------------------------------------------------------------------------
 * Metrics (otlp/batch.py METRICS and the data point tables)
 */
typedef struct {
    Col metric_index, start, time, flags, exemplars;
    AttrCols attrs;
    Col ex_time, ex_value_type, ex_double, ex_int, ex_span_id, ex_trace_id;
    AttrCols ex_attrs;
} PointCommon;

static void point_common(PointCommon *p, Col t)
{
    Col ex;
    p->metric_index = child(t, 0);
    p->attrs = attr_cols(child(t, 1));
    p->start = child(t, 2);
    p->time = child(t, 3);
    p->flags = child(t, 4);
    p->exemplars = child(t, 5);
    ex = list_values(p->exemplars);
    p->ex_attrs = attr_cols(child(ex, 0));
    p->ex_time = child(ex, 1);
    p->ex_value_type = child(ex, 2);
    p->ex_double = child(ex, 3);
    p->ex_int = child(ex, 4);
    p->ex_span_id = child(ex, 5);
    p->ex_trace_id = child(ex, 6);
}

/* Exemplar: time (2), as_double (3), span_id (4), trace_id (5), as_int (6), attrs (7) */
static void put_exemplars(Buf *b, const PointCommon *p, int64_t i, uint32_t tag)
{
    int64_t j, stop, n;
    const uint8_t *s;
    get_range(p->exemplars, i, &j, &stop);
    for (; j < stop; j++) {
        int8_t kind = get_i8(p->ex_value_type, j);
        size_t m = begin_msg(b, tag, 1);
        opt_fixed64(b, 0x11, get_u64(p->ex_time, j));
        if (kind == N_DOUBLE) {
            put_tag(b, 0x19);
            put_fixed64(b, get_u64(p->ex_double, j));
        }
        s = get_fixed(p->ex_span_id, j, 8, &n);
        opt_bytes(b, 0x22, s, n);
        s = get_fixed(p->ex_trace_id, j, 16, &n);
        opt_bytes(b, 0x2A, s, n);
        if (kind == N_INT) {
            put_tag(b, 0x31);
            put_fixed64(b, get_u64(p->ex_int, j));
        }
        put_attrs(b, &p->ex_attrs, j, 0x3A);
        end_msg(b, m, 1);
    }
}

/* packed repeated fixed64/double (8-byte elements), left out when empty */
static void put_packed64(Buf *b, uint32_t tag, Col list, int64_t i)
{
    int64_t j, stop;
    Col items = list_values(list);
    get_range(list, i, &j, &stop);
    if (stop <= j) return;
    put_tag(b, tag);
    put_varint(b, (uint64_t)(8 * (stop - j)));
    for (; j < stop; j++) put_fixed64(b, get_u64(items, j));
}

/* packed repeated uint64 (varints), left out when empty */
static void put_packed_varint(Buf *b, uint32_t tag, Col list, int64_t i)
{
    int64_t j, stop, size = 0, k;
    Col items = list_values(list);
    get_range(list, i, &j, &stop);
    if (stop <= j) return;
    for (k = j; k < stop; k++) size += varint_size(get_u64(items, k));
    put_tag(b, tag);
    put_varint(b, (uint64_t)size);
    for (k = j; k < stop; k++) put_varint(b, get_u64(items, k));
}

/* `optional double`: written when not null */
static inline void put_opt_double(Buf *b, uint32_t tag, Col c, int64_t i)
{
    if (is_valid(c, i)) {
        put_tag(b, tag);
        put_fixed64(b, get_u64(c, i));
    }
}

typedef struct {
    PointCommon p;
    Col value_type, as_double, as_int;
} NumberCols;

static void number_cols(NumberCols *c, Col t)
{
    point_common(&c->p, t);
    c->value_type = child(t, 6);
    c->as_double = child(t, 7);
    c->as_int = child(t, 8);
}

/* NumberDataPoint: start (2), time (3), as_double (4), exemplars (5), as_int (6),
 * attributes (7), flags (8) */
static void put_number_point(Buf *b, const void *cols, int64_t i)
{
    const NumberCols *c = cols;
    int8_t kind = get_i8(c->value_type, i);
    size_t m = begin_msg(b, 0x0A, 1);
    opt_fixed64(b, 0x11, get_u64(c->p.start, i));
    opt_fixed64(b, 0x19, get_u64(c->p.time, i));
    if (kind == N_DOUBLE) {
        put_tag(b, 0x21);
        put_fixed64(b, get_u64(c->as_double, i));
    }
    put_exemplars(b, &c->p, i, 0x2A);
    if (kind == N_INT) {
        put_tag(b, 0x31);
        put_fixed64(b, get_u64(c->as_int, i));
    }
    put_attrs(b, &c->p.attrs, i, 0x3A);
    opt_varint(b, 0x40, get_u32(c->p.flags, i));
    end_msg(b, m, 1);
}

typedef struct {
    PointCommon p;
    Col count, sum, bucket_counts, explicit_bounds, min, max;
} HistogramCols;

static void histogram_cols(HistogramCols *c, Col t)
{
    point_common(&c->p, t);
    c->count = child(t, 6);
    c->sum = child(t, 7);
    c->bucket_counts = child(t, 8);
    c->explicit_bounds = child(t, 9);
    c->min = child(t, 10);
    c->max = child(t, 11);
}

/* HistogramDataPoint: start (2), time (3), count (4), sum (5), bucket_counts (6),
 * explicit_bounds (7), exemplars (8), attributes (9), flags (10), min (11), max (12) */
static void put_histogram_point(Buf *b, const void *cols, int64_t i)
{
    const HistogramCols *c = cols;
    size_t m = begin_msg(b, 0x0A, 2);
    opt_fixed64(b, 0x11, get_u64(c->p.start, i));
    opt_fixed64(b, 0x19, get_u64(c->p.time, i));
    opt_fixed64(b, 0x21, get_u64(c->count, i));
    put_opt_double(b, 0x29, c->sum, i);
    put_packed64(b, 0x32, c->bucket_counts, i);
    put_packed64(b, 0x3A, c->explicit_bounds, i);
    put_exemplars(b, &c->p, i, 0x42);
    put_attrs(b, &c->p.attrs, i, 0x4A);
    opt_varint(b, 0x50, get_u32(c->p.flags, i));
    put_opt_double(b, 0x59, c->min, i);
    put_opt_double(b, 0x61, c->max, i);
    end_msg(b, m, 2);
}

typedef struct {
    PointCommon p;
    Col count, sum, scale, zero_count, pos_offset, pos_counts, neg_offset, neg_counts;
    Col min, max, zero_threshold;
} ExponentialCols;

static void exponential_cols(ExponentialCols *c, Col t)
{
    point_common(&c->p, t);
    c->count = child(t, 6);
    c->sum = child(t, 7);
    c->scale = child(t, 8);
    c->zero_count = child(t, 9);
    c->pos_offset = child(t, 10);
    c->pos_counts = child(t, 11);
    c->neg_offset = child(t, 12);
    c->neg_counts = child(t, 13);
    c->min = child(t, 14);
    c->max = child(t, 15);
    c->zero_threshold = child(t, 16);
}

/* Buckets: offset (1, sint32), bucket_counts (2, packed uint64); written only when set */
static void put_buckets(Buf *b, uint32_t tag, Col offset, Col counts, int64_t i)
{
    int32_t off = get_i32(offset, i);
    int64_t start, stop;
    size_t m;
    get_range(counts, i, &start, &stop);
    if (!off && stop <= start) return;
    m = begin_msg(b, tag, 1);
    opt_varint(b, 0x08, zigzag32(off));
    put_packed_varint(b, 0x12, counts, i);
    end_msg(b, m, 1);
}

/* ExponentialHistogramDataPoint: attributes (1), start (2), time (3), count (4), sum (5),
 * scale (6), zero_count (7), positive (8), negative (9), flags (10), exemplars (11),
 * min (12), max (13), zero_threshold (14) */
static void put_exponential_point(Buf *b, const void *cols, int64_t i)
{
    const ExponentialCols *c = cols;
    size_t m = begin_msg(b, 0x0A, 2);
    put_attrs(b, &c->p.attrs, i, 0x0A);
    opt_fixed64(b, 0x11, get_u64(c->p.start, i));
    opt_fixed64(b, 0x19, get_u64(c->p.time, i));
    opt_fixed64(b, 0x21, get_u64(c->count, i));
    put_opt_double(b, 0x29, c->sum, i);
    opt_varint(b, 0x30, zigzag32(get_i32(c->scale, i)));
    opt_fixed64(b, 0x39, get_u64(c->zero_count, i));
    put_buckets(b, 0x42, c->pos_offset, c->pos_counts, i);
    put_buckets(b, 0x4A, c->neg_offset, c->neg_counts, i);
    opt_varint(b, 0x50, get_u32(c->p.flags, i));
    put_exemplars(b, &c->p, i, 0x5A);
    put_opt_double(b, 0x61, c->min, i);
    put_opt_double(b, 0x69, c->max, i);
    opt_fixed64(b, 0x71, get_u64(c->zero_threshold, i));
    end_msg(b, m, 2);
}

typedef struct {
    PointCommon p;
    Col count, sum, quantiles, q_quantile, q_value;
} SummaryCols;

static void summary_cols(SummaryCols *c, Col t)
{
    Col q;
    /* the common columns include exemplars, which summaries ignore (as encode.py does) */
    point_common(&c->p, t);
    c->count = child(t, 6);
    c->sum = child(t, 7);
    c->quantiles = child(t, 8);
    q = list_values(c->quantiles);
    c->q_quantile = child(q, 0);
    c->q_value = child(q, 1);
}

/* SummaryDataPoint: start (2), time (3), count (4), sum (5), quantile_values (6),
 * attributes (7), flags (8) */
static void put_summary_point(Buf *b, const void *cols, int64_t i)
{
    const SummaryCols *c = cols;
    int64_t j, stop;
    size_t m = begin_msg(b, 0x0A, 2);
    opt_fixed64(b, 0x11, get_u64(c->p.start, i));
    opt_fixed64(b, 0x19, get_u64(c->p.time, i));
    opt_fixed64(b, 0x21, get_u64(c->count, i));
    opt_fixed64(b, 0x29, get_u64(c->sum, i));
    get_range(c->quantiles, i, &j, &stop);
    for (; j < stop; j++) {
        uint64_t q = get_u64(c->q_quantile, j), v = get_u64(c->q_value, j);
        put_tag(b, 0x32);
        put_varint(b, (uint64_t)((q ? 9 : 0) + (v ? 9 : 0)));
        opt_fixed64(b, 0x09, q);
        opt_fixed64(b, 0x11, v);
    }
    put_attrs(b, &c->p.attrs, i, 0x3A);
    opt_varint(b, 0x40, get_u32(c->p.flags, i));
    end_msg(b, m, 2);
}

typedef void (*RowWriter)(Buf *b, const void *cols, int64_t i);

/* one data point table: its columns, writer, and points grouped by metric */
typedef struct {
    const void *cols;
    RowWriter write;
    Groups by_metric;
} PointTable;

typedef struct {
    Col name, description, unit, type, temporality, monotonic;
    AttrCols metadata;
    PointTable tables[5]; /* indexed by M_* - 1 */
} MetricCols;

static void metric_cols(MetricCols *c, Col t)
{
    c->name = child(t, 1);
    c->description = child(t, 2);
    c->unit = child(t, 3);
    c->type = child(t, 4);
    c->temporality = child(t, 5);
    c->monotonic = child(t, 6);
    c->metadata = attr_cols(child(t, 7));
}

/* Metric: name (1), description (2), unit (3), gauge (5), sum (7), histogram (9),
 * exponential_histogram (10), summary (11), metadata (12) */
static void put_metric(Buf *b, const void *cols, int64_t i)
{
    static const uint32_t data_tags[] = {0, 0x2A, 0x3A, 0x4A, 0x52, 0x5A};
    const MetricCols *c = cols;
    int64_t n;
    const uint8_t *s;
    int8_t type = get_i8(c->type, i);
    size_t m = begin_msg(b, 0x12, 2);
    s = get_str(c->name, i, &n);
    opt_bytes(b, 0x0A, s, n);
    s = get_str(c->description, i, &n);
    opt_bytes(b, 0x12, s, n);
    s = get_str(c->unit, i, &n);
    opt_bytes(b, 0x1A, s, n);
    if (type >= M_GAUGE && type <= M_SUMMARY) {
        const PointTable *t = &c->tables[type - 1];
        int64_t k;
        size_t d = begin_msg(b, data_tags[type], 2);
        for (k = t->by_metric.first[i]; k < t->by_metric.first[i + 1]; k++)
            t->write(b, t->cols, t->by_metric.rows[k]);
        if (type == M_SUM || type == M_HISTOGRAM || type == M_EXPONENTIAL_HISTOGRAM)
            opt_enum(b, 0x10, get_i8(c->temporality, i));
        if (type == M_SUM) opt_varint(b, 0x18, (uint64_t)get_bool(c->monotonic, i));
        end_msg(b, d, 2);
    }
    put_attrs(b, &c->metadata, i, 0x62);
    end_msg(b, m, 2);
}

/* ---------------------------------------------------------------------------------------
 * The request: Resource* (field 1) { resource (1), Scope* (2) { scope (1), records (2),
 * schema_url (3) }, schema_url (3) } -- the same shape for all three signals.
 */
static int put_request(Buf *b, Col res, Col sc, Col rec, const void *cols, RowWriter write)
{
    ResourceCols r = resource_cols(res);
    ScopeCols s = scope_cols(sc);
    Groups scopes_of, records_of;
    int64_t ri, k, q;
    int rc = group_rows(&scopes_of, s.resource_index, sc.a->length, res.a->length);
    if (rc) return rc;
    rc = group_rows(&records_of, child(rec, 0), rec.a->length, sc.a->length);
    if (rc) {
        groups_free(&scopes_of);
        return rc;
    }
    for (ri = 0; ri < res.a->length; ri++) {
        size_t rm = begin_msg(b, 0x0A, 3);
        int64_t n;
        const uint8_t *url;
        put_resource(b, &r, ri);
        for (k = scopes_of.first[ri]; k < scopes_of.first[ri + 1]; k++) {
            int64_t si = scopes_of.rows[k];
            size_t sm = begin_msg(b, 0x12, 3);
            put_scope(b, &s, si);
            for (q = records_of.first[si]; q < records_of.first[si + 1]; q++)
                write(b, cols, records_of.rows[q]);
            url = get_str(s.schema_url, si, &n);
            opt_bytes(b, 0x1A, url, n);
            end_msg(b, sm, 3);
        }
        url = get_str(r.schema_url, ri, &n);
        opt_bytes(b, 0x1A, url, n);
        end_msg(b, rm, 3);
    }
    groups_free(&scopes_of);
    groups_free(&records_of);
    return b->failed ? NO_MEMORY : OK;
}

/* ---------------------------------------------------------------------------------------
 * Python interface
 */
static const struct ArrowArray *capsule_array(PyObject *capsule)
{
    const struct ArrowArray *a = PyCapsule_GetPointer(capsule, "arrow_array");
    if (a && a->release == NULL) {
        PyErr_SetString(PyExc_ValueError, "released ArrowArray");
        return NULL;
    }
    return a;
}

/* the result, or the exception for a failure code (ValueError: otlp/encode_fast.py then
 * defers to the Python encoder) */
static PyObject *finish(Buf *b, int rc)
{
    PyObject *out = NULL;
    if (rc == OK)
        out = PyBytes_FromStringAndSize((const char *)b->p, (Py_ssize_t)b->len);
    else if (rc == NO_MEMORY)
        PyErr_NoMemory();
    else if (rc == BAD_INDEX)
        PyErr_SetString(PyExc_ValueError, "a resource, scope or metric index out of range");
    else
        PyErr_SetString(PyExc_ValueError, "data points under a metric of another type");
    free(b->p);
    return out;
}

/* Encode.{traces,logs}(resources, scopes, records): each an "arrow_array" capsule of a
 * record batch (a struct array) with the otlp/batch.py schema, checked by the caller. */
static PyObject *encode_records(PyObject *args, int logs)
{
    PyObject *caps[3];
    const struct ArrowArray *arrays[3];
    Buf b = {0};
    int rc, k;
    if (!PyArg_UnpackTuple(args, "encode", 3, 3, &caps[0], &caps[1], &caps[2])) return NULL;
    for (k = 0; k < 3; k++)
        if (!(arrays[k] = capsule_array(caps[k]))) return NULL;
    Py_BEGIN_ALLOW_THREADS;
    if (logs) {
        LogCols c;
        log_cols(&c, col_of(arrays[2], 0));
        rc = put_request(&b, col_of(arrays[0], 0), col_of(arrays[1], 0), col_of(arrays[2], 0), &c,
                         put_log);
    } else {
        SpanCols c;
        span_cols(&c, col_of(arrays[2], 0));
        rc = put_request(&b, col_of(arrays[0], 0), col_of(arrays[1], 0), col_of(arrays[2], 0), &c,
                         put_span);
    }
    Py_END_ALLOW_THREADS;
    return finish(&b, rc);
}

static PyObject *py_encode_traces(PyObject *self, PyObject *args) { return encode_records(args, 0); }
static PyObject *py_encode_logs(PyObject *self, PyObject *args) { return encode_records(args, 1); }

/* encode_metrics(resources, scopes, metrics, gauge, sum, histogram, exponential_histogram,
 * summary) */
static PyObject *py_encode_metrics(PyObject *self, PyObject *args)
{
    PyObject *caps[8];
    const struct ArrowArray *arrays[8];
    MetricCols c;
    NumberCols gauge, sum;
    HistogramCols histogram;
    ExponentialCols exponential;
    SummaryCols summary;
    Buf b = {0};
    int rc = 0, k;
    int64_t n_metrics, i, q;
    if (!PyArg_UnpackTuple(args, "encode_metrics", 8, 8, &caps[0], &caps[1], &caps[2], &caps[3],
                           &caps[4], &caps[5], &caps[6], &caps[7]))
        return NULL;
    for (k = 0; k < 8; k++)
        if (!(arrays[k] = capsule_array(caps[k]))) return NULL;
    metric_cols(&c, col_of(arrays[2], 0));
    number_cols(&gauge, col_of(arrays[3], 0));
    number_cols(&sum, col_of(arrays[4], 0));
    histogram_cols(&histogram, col_of(arrays[5], 0));
    exponential_cols(&exponential, col_of(arrays[6], 0));
    summary_cols(&summary, col_of(arrays[7], 0));
    c.tables[0] = (PointTable){&gauge, put_number_point, {0}};
    c.tables[1] = (PointTable){&sum, put_number_point, {0}};
    c.tables[2] = (PointTable){&histogram, put_histogram_point, {0}};
    c.tables[3] = (PointTable){&exponential, put_exponential_point, {0}};
    c.tables[4] = (PointTable){&summary, put_summary_point, {0}};
    n_metrics = arrays[2]->length;
    for (k = 0; k < 5 && rc == 0; k++) {
        Col table = col_of(arrays[3 + k], 0);
        rc = group_rows(&c.tables[k].by_metric, child(table, 0), table.a->length, n_metrics);
    }
    /* The Python encoder appends a table's points under that table's oneof field whatever
     * the metric's type says; a mismatch is left to it. */
    for (k = 0; k < 5 && rc == 0; k++) {
        const Groups *g = &c.tables[k].by_metric;
        for (i = 0; i < n_metrics && rc == 0; i++) {
            q = g->first[i + 1] - g->first[i];
            if (q && get_i8(c.type, i) != k + 1) rc = BAD_TYPE;
        }
    }
    if (rc == 0) {
        Py_BEGIN_ALLOW_THREADS;
        rc = put_request(&b, col_of(arrays[0], 0), col_of(arrays[1], 0), col_of(arrays[2], 0), &c,
                         put_metric);
        Py_END_ALLOW_THREADS;
    }
    for (k = 0; k < 5; k++) groups_free(&c.tables[k].by_metric);
    return finish(&b, rc);
}

static PyMethodDef methods[] = {
    {"encode_traces", py_encode_traces, METH_VARARGS,
     "encode_traces(resources, scopes, spans) -> ExportTraceServiceRequest bytes"},
    {"encode_logs", py_encode_logs, METH_VARARGS,
     "encode_logs(resources, scopes, logs) -> ExportLogsServiceRequest bytes"},
    {"encode_metrics", py_encode_metrics, METH_VARARGS,
     "encode_metrics(resources, scopes, metrics, gauge, sum, histogram, exponential_histogram, "
     "summary) -> ExportMetricsServiceRequest bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "otlp._encode",
    "Compiled OTLP protobuf encoder for the columnar batch (see otlp/encode_fast.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__encode(void)
{
    PyObject *m;
    /* the wire format is little-endian and so are the Arrow buffers read with memcpy here;
     * elsewhere the import fails and otlp/encode_fast.py uses the Python encoder */
    const uint16_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        PyErr_SetString(PyExc_ImportError, "otlp._encode supports little-endian hosts only");
        return NULL;
    }
    m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_HASH", ENCODE_SOURCE_HASH) < 0) Py_CLEAR(m);
    return m;
}
