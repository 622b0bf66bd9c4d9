/* fingerprint._native: hot loops of a login's check in C (issue 20).
 *
 * unpack_window() is fingerprint.history._unpack: an account's packed logins decoded
 * into LoginEvents, the same values of the same types (addresses written as
 * socket.inet_ntoa writes them). pack_login() is fingerprint.history._python_pack,
 * its inverse: one login packed, its values added to the window's symbol table in
 * the same order, for the exact types history is given (else None: Python packs).
 * append_login() is MemoryHistoryStore._record_in_order: the newest login of a window
 * that keeps every login, packed and appended (else None: the Python method answers).
 *
 * plain_json() is the look fingerprint.session takes at a record before msgspec
 * converts it: whether it is made only of what a JSON decoder makes. It only ever
 * saves the Python look (_plain_record, _has_lone_surrogate); False means "look".
 *
 * packed_stability() is the same walk over the memory store's packed window, counting
 * ids of each login's bytes and symbols instead of objects (see its section below).
 *
 * utc_time() and v4_address() read a session's time and address in their common
 * spellings as fingerprint._session_values does (else None: Python reads them);
 * record_on() is history._record_on for the accounts tables' own values; v4_texts()
 * writes a login's address and /24 (fingerprint.stages.login.address_texts);
 * fields_dict() is Stability.to_dict's dict. Each has its section below.
 *
 * stability_windows() is fingerprint.features.stability.python_stability_windows
 * written against the CPython API: the same walk over the same Python objects (found
 * and counted as its dicts and sets find them: hashes, then the same object or ==,
 * in small tables of its own), the same memos looked up in the same
 * order (the module's _SHARES, _WINDOW_DAYS, _ENTROPIES, read at each call so a test
 * can replace them; a count pattern missing from _ENTROPIES is computed here, by
 * _entropy_of's float operations, and kept through the memo's put), and the same
 * rounding (builtins.round). Floats are combined in IEEE doubles exactly as the
 * Python expressions combine them.
 *
 * It takes only the common case, exactly: history a tuple or list of LoginEvents with
 * a float ts, the current login likewise, windows a tuple or list of floats that are
 * not NaN or of ints a double holds exactly, the share a float. For anything else it returns None and
 * the Python function answers. Optional: without a C compiler the package installs
 * without it and the Python function answers every call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <limits.h>
#include <math.h>
#include <string.h>

/* LoginEvent's fields (fingerprint.history.LoginEvent), by position. */
enum {
    F_TS = 0, F_DIGEST = 1, F_DEVICE = 3, F_IP = 4, F_PROVINCE = 5, F_ANONYMOUS = 9, F_NETWORK = 10,
    F_ASN = 11, F_NETWORK_TYPE = 12, F_CARRIER = 13, F_HOUR = 14, F_RELAY = 15,
    EVENT_FIELDS = 16
};
#define STABILITY_FIELDS 21
/* The SHA-256 of this file as setup.py read it (see fingerprint.features.stability). */
#ifndef FINGERPRINT_NATIVE_SOURCE
#define FINGERPRINT_NATIVE_SOURCE ""
#endif
#define DAY 86400.0

static PyObject *g_namespace;  /* fingerprint.features.stability's globals() */
static PyObject *g_memo_type;  /* the type of its _ENTROPIES (BoundedMemo) */
static PyObject *g_stability;  /* the Stability named tuple class */
static PyObject *g_login_event;  /* fingerprint.history.LoginEvent */
static PyObject *g_round, *g_three, *g_four, *g_zero_float, *g_empty_text, *g_put, *g_sum;
static PyObject *g_night[6];   /* 23, 0, 1, 2, 3, 4 */
static PyObject *g_key_shares, *g_key_window_days, *g_key_entropies, *g_key_local_hour;

/* What one call reads from the stability module (strong references). */
typedef struct {
    PyObject *shares, *window_days, *entropies, *local_hour;
} Helpers;

/* ---- The walk's counters: small hash tables with a dict's and a set's semantics ----
 *
 * The Python walk keeps three dicts (value -> count) and three sets, made and freed at
 * every call, and moves a key to a dict's end (pop, then set) at every sighting: three
 * hash probes and a boxed count a login and dict. These tables find a key as a dict
 * does (its hash, then the same object or ==, the stored key on the left), hold the
 * same key objects (an update keeps the stored key, a move stores the new one, as
 * pop-then-set does), and stamp each key at its insertion or move: ordered by stamp,
 * their keys are in the dict's order. They start in place (16 slots, no allocation)
 * and double past two thirds full, as a dict does. */
typedef struct {
    PyObject *key;  /* strong; NULL: an empty slot */
    Py_hash_t hash;
    long count;
    unsigned long stamp;
} Slot;

#define INLINE_SLOTS 16

typedef struct {
    Slot *slots;
    size_t mask;
    Py_ssize_t used;
    /* By id: keys are 64-bit ids a packed window's values map to one to one (see
     * packed_stability), held in ``hash``; ``key`` only marks the slot (not owned). */
    int by_id;
    Slot inline_slots[INLINE_SLOTS];
} Table;

/* An id's probe start (ids are small and regular; a dict's hash of an int is too, but
 * its probing mixes the high bits in, as this does). */
static size_t
spread(Py_hash_t id)
{
    unsigned long long x = (unsigned long long)id;
    x ^= x >> 31;
    x *= 0x9E3779B97F4A7C15ULL;
    return (size_t)(x ^ x >> 29);
}

static void
table_free(Table *t)
{
    if (t->slots == NULL) {
        return;
    }
    for (size_t i = 0; !t->by_id && i <= t->mask; i++) {
        Py_XDECREF(t->slots[i].key);
    }
    if (t->slots != t->inline_slots) {
        PyMem_Free(t->slots);
    }
    t->slots = NULL;
}

/* The first empty slot on ``hash``'s probe sequence (the table holds an empty one). */
static Slot *
table_empty(const Table *t, Py_hash_t hash)
{
    size_t start = t->by_id ? spread(hash) : (size_t)hash;
    size_t i = start & t->mask, perturb = start;
    while (t->slots[i].key != NULL) {
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & t->mask;
    }
    return &t->slots[i];
}

/* The slot of the key equal to ``key``: 1 (in *out), 0 when there is none, -1 with an
 * error (an == that raised). */
static int
table_find(const Table *t, PyObject *key, Py_hash_t hash, Slot **out)
{
    size_t i = (size_t)hash & t->mask, perturb = (size_t)hash;
    for (;;) {
        Slot *slot = &t->slots[i];
        if (slot->key == NULL) {
            return 0;
        }
        if (slot->key == key) {
            *out = slot;
            return 1;
        }
        if (slot->hash == hash) {
            PyObject *stored = slot->key;
            Py_INCREF(stored);
            int same = PyObject_RichCompareBool(stored, key, Py_EQ);
            Py_DECREF(stored);
            if (same != 0) {
                *out = slot;
                return same;  /* 1, or -1 with the error */
            }
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & t->mask;
    }
}

/* A new key (not in the table), with its count and stamp. */
static int
table_insert(Table *t, PyObject *key, Py_hash_t hash, long count, unsigned long stamp)
{
    if ((size_t)(t->used + 1) * 3 > (t->mask + 1) * 2) {
        size_t size = (t->mask + 1) * 2;
        Slot *grown = PyMem_Calloc(size, sizeof(Slot));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        Table bigger = {grown, size - 1, t->used, t->by_id};
        for (size_t i = 0; i <= t->mask; i++) {
            if (t->slots[i].key != NULL) {
                *table_empty(&bigger, t->slots[i].hash) = t->slots[i];  /* keys move */
            }
        }
        if (t->slots != t->inline_slots) {
            PyMem_Free(t->slots);
        }
        t->slots = grown;
        t->mask = size - 1;
    }
    Slot *slot = table_empty(t, hash);
    if (!t->by_id) {
        Py_INCREF(key);
    }
    slot->key = key;
    slot->hash = hash;
    slot->count = count;
    slot->stamp = stamp;
    t->used++;
    return 0;
}

/* counts[key] = counts.get(key, 0) + 1, or, ``to_end``, counts.pop(key, 0) + 1 (the
 * key moves to the dict's end and the dict holds the new key object). */
static int
table_count(Table *t, PyObject *key, int to_end, unsigned long *clock)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        return -1;
    }
    Slot *slot = NULL;
    int found = table_find(t, key, hash, &slot);
    if (found <= 0) {
        return found < 0 ? -1 : table_insert(t, key, hash, 1, (*clock)++);
    }
    slot->count++;
    if (to_end) {
        slot->stamp = (*clock)++;
        Py_INCREF(key);
        Py_SETREF(slot->key, key);
    }
    return 0;
}

/* values.add(key) */
static int
table_add(Table *t, PyObject *key, unsigned long *clock)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        return -1;
    }
    Slot *slot = NULL;
    int found = table_find(t, key, hash, &slot);
    if (found != 0) {
        return found < 0 ? -1 : 0;
    }
    return table_insert(t, key, hash, 1, (*clock)++);
}

/* ``key in values``: 1, 0, or -1 with an error. */
static int
table_contains(const Table *t, PyObject *key)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        return -1;
    }
    Slot *slot = NULL;
    return table_find(t, key, hash, &slot);
}

/* counts.get(key) as a C long: 0 when absent (*found 0), -1 with an error. */
static int
table_get(const Table *t, PyObject *key, long *count, int *found)
{
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) {
        return -1;
    }
    Slot *slot = NULL;
    int in = table_find(t, key, hash, &slot);
    if (in < 0) {
        return -1;
    }
    *found = in;
    *count = in ? slot->count : 0;
    return 0;
}

/* The slot of ``id`` in a table by id: 1 (in *out), or 0 with *out the empty slot. */
static int
id_find(const Table *t, Py_hash_t id, Slot **out)
{
    size_t start = spread(id);
    size_t i = start & t->mask, perturb = start;
    for (;;) {
        Slot *slot = &t->slots[i];
        if (slot->key == NULL || slot->hash == id) {
            *out = slot;
            return slot->key != NULL;
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & t->mask;
    }
}

/* table_count and table_add for a table by id (its keys mark slots: Py_None). */
static int
id_count(Table *t, Py_hash_t id, int to_end, unsigned long *clock)
{
    Slot *slot;
    if (!id_find(t, id, &slot)) {
        return table_insert(t, Py_None, id, 1, (*clock)++);
    }
    slot->count++;
    if (to_end) {
        slot->stamp = (*clock)++;
    }
    return 0;
}

static int
id_add(Table *t, Py_hash_t id, unsigned long *clock)
{
    Slot *slot;
    return id_find(t, id, &slot) ? 0 : table_insert(t, Py_None, id, 1, (*clock)++);
}

static int
id_contains(const Table *t, Py_hash_t id)
{
    Slot *slot;
    return id_find(t, id, &slot);
}

static long
id_get(const Table *t, Py_hash_t id, int *found)
{
    Slot *slot;
    *found = id_find(t, id, &slot);
    return *found ? slot->count : 0;
}

/* The counters of the walk (see python_stability_windows). */
typedef struct {
    Table devices, networks, hours;  /* value -> count, as the Python walk's dicts */
    Table ips, asns, provinces;      /* earlier logins' values, as its sets */
    unsigned long clock;             /* the next stamp */
    PyObject *cur_hour;                    /* strong */
    double first_seen;                     /* the oldest earlier login on this device */
    int seen_before;                       /* ... when there is one */
    long changes, sessions, anonymised, relays;
    int blank_device, carrier_open, carrier_known, type_open, type_known;
} Walk;

/* Python's ``a == b`` (op Py_EQ) or ``a != b`` (Py_NE): no identity shortcut, as the
 * operators have none; two str compared by value at once. */
static int
compare(PyObject *a, PyObject *b, int op)
{
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b)) {
        int same = a == b || PyUnicode_Compare(a, b) == 0;
        return op == Py_EQ ? same : !same;
    }
    PyObject *result = PyObject_RichCompare(a, b, op);
    if (result == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

static int
equal(PyObject *a, PyObject *b)
{
    return compare(a, b, Py_EQ);
}

/* memo[(a, b)] */
static PyObject *
memo_pair(PyObject *memo, long a, long b)
{
    PyObject *key = PyTuple_New(2);
    if (key == NULL) {
        return NULL;
    }
    PyObject *first = PyLong_FromLong(a), *second = PyLong_FromLong(b);
    PyObject *found = NULL;
    if (first != NULL && second != NULL) {
        PyTuple_SET_ITEM(key, 0, first);  /* steal */
        PyTuple_SET_ITEM(key, 1, second);
        first = second = NULL;
        found = PyObject_GetItem(memo, key);
    }
    Py_XDECREF(first);
    Py_XDECREF(second);
    Py_DECREF(key);
    return found;
}

/* _entropy_of(values) before its rounding: -sum(n / total * log2(n / total)) + 0.0,
 * the same float operations in the same order; the sum is builtins.sum's own where
 * it is more than a left-to-right addition (3.12 on). NULL with an error. */
static PyObject *
entropy_sum(PyObject *values)
{
    Py_ssize_t size = PyTuple_GET_SIZE(values);
    long long total = 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        total += PyLong_AsLongLong(PyTuple_GET_ITEM(values, i));
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    double sum = 0.0;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *terms = PyTuple_New(size);
    if (terms == NULL) {
        return NULL;
    }
#endif
    for (Py_ssize_t i = 0; i < size; i++) {
        double share = (double)PyLong_AsLongLong(PyTuple_GET_ITEM(values, i)) / (double)total;
        double term = share * log2(share);
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *value = PyFloat_FromDouble(term);
        if (value == NULL) {
            Py_DECREF(terms);
            return NULL;
        }
        PyTuple_SET_ITEM(terms, i, value);
#else
        sum += term;  /* from 0.0: sum() adds the first term to the int 0 */
#endif
    }
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *summed = PyObject_CallOneArg(g_sum, terms);
    Py_DECREF(terms);
    if (summed == NULL) {
        return NULL;
    }
    sum = PyFloat_AsDouble(summed);
    Py_DECREF(summed);
#endif
    return PyFloat_FromDouble(-sum + 0.0);
}

/* _entropy_of(values): 0.0 under two counts, else round(entropy_sum(values), 4). */
static PyObject *
entropy_of(PyObject *values)
{
    if (PyTuple_GET_SIZE(values) < 2) {
        Py_INCREF(g_zero_float);
        return g_zero_float;
    }
    PyObject *unrounded = entropy_sum(values);
    if (unrounded == NULL) {
        return NULL;
    }
    PyObject *rounded = PyObject_CallFunctionObjArgs(g_round, unrounded, g_four, NULL);
    Py_DECREF(unrounded);
    return rounded;
}

/* _ENTROPIES[values]: a hit read from the memo's dict; a miss computed here and kept
 * by the memo's own put() (its bound and its keep test), not by its Python compute. */
static PyObject *
memo_entropy(PyObject *entropies, PyObject *values)
{
    if ((PyObject *)Py_TYPE(entropies) != g_memo_type || !PyDict_Check(entropies)) {
        return PyObject_GetItem(entropies, values);  /* a test's own mapping */
    }
    PyObject *found = PyDict_GetItemWithError(entropies, values);
    if (found != NULL) {
        Py_INCREF(found);
        return found;
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *computed = entropy_of(values);
    if (computed == NULL) {
        return NULL;
    }
    PyObject *kept = PyObject_CallMethodObjArgs(entropies, g_put, values, computed, NULL);
    Py_DECREF(computed);
    return kept;  /* put() returns the value */
}

static int
later_first(const void *a, const void *b)
{
    unsigned long x = (*(const Slot *const *)a)->stamp, y = (*(const Slot *const *)b)->stamp;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* _entropy(counts): 0.0 under two counts, else _ENTROPIES[tuple(reversed(values))]:
 * the counts latest stamp first. */
static PyObject *
entropy(PyObject *entropies, const Table *counts)
{
    Py_ssize_t size = counts->used;
    if (size < 2) {
        Py_INCREF(g_zero_float);
        return g_zero_float;
    }
    const Slot **order = PyMem_New(const Slot *, size);
    if (order == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t n = 0;
    for (size_t i = 0; i <= counts->mask; i++) {
        if (counts->slots[i].key != NULL) {
            order[n++] = &counts->slots[i];
        }
    }
    qsort(order, (size_t)n, sizeof *order, later_first);
    PyObject *values = PyTuple_New(size);
    for (Py_ssize_t i = 0; values != NULL && i < size; i++) {
        PyObject *value = PyLong_FromLong(order[i]->count);
        if (value == NULL) {
            Py_CLEAR(values);
            break;
        }
        PyTuple_SET_ITEM(values, i, value);
    }
    PyMem_Free(order);
    if (values == NULL) {
        return NULL;
    }
    PyObject *found = memo_entropy(entropies, values);
    Py_DECREF(values);
    return found;
}

/* _new_from(value, still_open, known) */
static PyObject *
new_from(PyObject *value, int still_open, int known)
{
    if (value == Py_None) {
        Py_RETURN_NONE;
    }
    if (!still_open) {
        Py_RETURN_FALSE;
    }
    if (known) {
        Py_RETURN_TRUE;
    }
    Py_RETURN_NONE;
}

/* A record of a named tuple ``type`` (tuple.__new__(type, fields)): allocated as that
 * allocates it, then given the ``count`` fields, each a new reference it takes (NULL
 * when one is NULL, its error set: every field is released). */
static PyObject *
new_record(PyObject *type, PyObject **fields, int count)
{
    PyObject *made = NULL;
    for (int i = 0; i < count; i++) {
        if (fields[i] == NULL) {
            goto done;
        }
    }
    made = ((PyTypeObject *)type)->tp_alloc((PyTypeObject *)type, count);
    if (made == NULL) {
        goto done;
    }
    for (int i = 0; i < count; i++) {
        PyTuple_SET_ITEM(made, i, fields[i]);  /* steals */
        fields[i] = NULL;
    }
done:
    for (int i = 0; i < count; i++) {
        Py_XDECREF(fields[i]);
    }
    return made;
}

/* A Stability of its fields (see new_record). */
static PyObject *
new_stability(PyObject **fields)
{
    return new_record(g_stability, fields, STABILITY_FIELDS);
}

/* len(values) + (value not in values) - (value is None or None in values)
 *   [- (value == "" or "" in values), with ``blank``] */
static int
distinct(const Table *values, PyObject *value, int blank, Py_ssize_t *out)
{
    int in = table_contains(values, value);
    if (in < 0) {
        return -1;
    }
    int none = value == Py_None;
    if (!none) {
        none = table_contains(values, Py_None);
        if (none < 0) {
            return -1;
        }
    }
    Py_ssize_t found = values->used + !in - none;
    if (blank) {
        int empty = equal(value, g_empty_text);
        if (empty < 0) {
            return -1;
        }
        if (!empty) {
            empty = table_contains(values, g_empty_text);
            if (empty < 0) {
                return -1;
            }
        }
        found -= empty;
    }
    *out = found;
    return 0;
}

/* What the snapshot reads of this login's values in the counters: its province seen
 * before (and None among the provinces), the distinct counts with it, the night
 * logins and its hour's count. */
typedef struct {
    int province_seen, province_none, hour_found;
    Py_ssize_t ips, asns, provinces;
    long night, hour_count;
} Looked;

/* The object walk's Looked: this login's values looked up as the Python walk does. */
static int
look_up(const Walk *w, PyObject *current, Looked *out)
{
    PyObject *ip = PyTuple_GET_ITEM(current, F_IP);
    PyObject *province = PyTuple_GET_ITEM(current, F_PROVINCE);
    PyObject *asn = PyTuple_GET_ITEM(current, F_ASN);
    out->province_seen = out->province_none = 0;
    if (province != Py_None) {
        out->province_seen = table_contains(&w->provinces, province);
        if (out->province_seen < 0) {
            return -1;
        }
        if (!out->province_seen) {
            out->province_none = table_contains(&w->provinces, Py_None);
            if (out->province_none < 0) {
                return -1;
            }
        }
    }
    if (distinct(&w->ips, ip, 1, &out->ips) < 0 || distinct(&w->asns, asn, 0, &out->asns) < 0
        || distinct(&w->provinces, province, 1, &out->provinces) < 0) {
        return -1;
    }
    out->night = 0;
    for (int i = 0; i < 6; i++) {
        long n;
        int found;
        if (table_get(&w->hours, g_night[i], &n, &found) < 0) {
            return -1;
        }
        out->night += n;
    }
    out->hour_found = 0;
    out->hour_count = 0;
    if (w->sessions > 0 && table_get(&w->hours, w->cur_hour, &out->hour_count, &out->hour_found) < 0) {
        return -1;
    }
    return 0;
}

/* fields[i] = value, stopping at the first that fails (no call with an error set). */
#define SET(i, value)                      \
    do {                                   \
        if ((fields[i] = (value)) == NULL) { \
            goto fail;                     \
        }                                  \
    } while (0)

/* _snapshot: the features of one window from the walk's counters and what was looked
 * up in them of this login's values (either walk's). */
static PyObject *
snapshot(const Helpers *h, PyObject *window, PyObject *current, double share, const Walk *w,
         const Looked *looked)
{
    PyObject *fields[STABILITY_FIELDS] = {NULL};
    PyObject *cur_device = PyTuple_GET_ITEM(current, F_DEVICE);
    PyObject *province = PyTuple_GET_ITEM(current, F_PROVINCE);
    double cur_ts = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(current, F_TS));
    int has_device = PyObject_IsTrue(cur_device);
    if (has_device < 0) {
        return NULL;
    }

    /* sum() and max() of the device counts (all ints this walk made). */
    long device_total = 0, most = 0;
    int first_count = 1;
    for (size_t i = 0; i <= w->devices.mask; i++) {
        if (w->devices.slots[i].key == NULL) {
            continue;
        }
        long n = w->devices.slots[i].count;
        device_total += n;
        if (first_count || n > most) {
            most = n;
            first_count = 0;
        }
    }
    long earlier_devices = device_total - (has_device ? 1 : 0);
    PyObject *new_device;
    if (cur_device == Py_None || !(earlier_devices || w->blank_device)) {
        new_device = Py_None;
    }
    else if (has_device) {
        new_device = w->seen_before ? Py_False : Py_True;
    }
    else {
        new_device = w->blank_device ? Py_False : Py_True;
    }

    PyObject *new_province;
    if (province == Py_None) {
        new_province = Py_None;
    }
    else if (looked->province_seen) {
        new_province = Py_False;
    }
    else {
        new_province = w->provinces.used - looked->province_none ? Py_True : Py_None;
    }
    Py_ssize_t ips = looked->ips, asns = looked->asns, provinces = looked->provinces;
    long night = looked->night;
    int unusual = 0;
    if (w->sessions > 0) {
        if (!looked->hour_found) {
            PyErr_SetObject(PyExc_KeyError, w->cur_hour);
            return NULL;
        }
        /* (hours[cur_hour] - 1) / sessions: both exact in a double, one rounding. */
        unusual = (double)(looked->hour_count - 1) / (double)w->sessions < share;
    }

    SET(0, PyObject_GetItem(h->window_days, window));
    SET(1, PyLong_FromLong(w->sessions));
    SET(2, PyLong_FromSsize_t(w->devices.used));
    if (w->devices.used) {
        SET(3, memo_pair(h->shares, most, device_total));
    }
    else {
        Py_INCREF(g_zero_float);
        SET(3, g_zero_float);
    }
    SET(4, PyLong_FromLong(w->changes ? w->changes - 1 : 0));
    if (has_device) {
        double first = w->seen_before ? w->first_seen : cur_ts;
        double age = (cur_ts - first) / DAY;
        /* round(0.0, 3) is 0.0 (and -0.0 is -0.0): a device first seen now, most
         * logins of a new one, skips the decimal formatting round() goes through. */
        PyObject *days = PyFloat_FromDouble(age);
        if (days != NULL && age != 0.0) {
            Py_SETREF(days, PyObject_CallFunctionObjArgs(g_round, days, g_three, NULL));
        }
        SET(5, days);
    }
    else {
        Py_INCREF(Py_None);
        SET(5, Py_None);
    }
    SET(6, PyLong_FromSsize_t(ips));
    SET(7, PyLong_FromSsize_t(w->networks.used));
    SET(8, PyLong_FromSsize_t(asns));
    SET(9, PyLong_FromSsize_t(provinces));
    SET(10, entropy(h->entropies, &w->networks));
    SET(11, memo_pair(h->shares, night, w->sessions + 1));
    SET(12, entropy(h->entropies, &w->hours));
    SET(13, PyBool_FromLong(unusual));
    Py_INCREF(new_device);
    SET(14, new_device);
    Py_INCREF(new_province);
    SET(15, new_province);
    SET(16, new_from(PyTuple_GET_ITEM(current, F_CARRIER), w->carrier_open, w->carrier_known));
    SET(17, new_from(PyTuple_GET_ITEM(current, F_NETWORK_TYPE), w->type_open, w->type_known));
    SET(18, PyLong_FromLong(w->anonymised));
    SET(19, memo_pair(h->shares, w->anonymised, w->sessions + 1));
    SET(20, PyLong_FromLong(w->relays));

    return new_stability(fields);
fail:
    for (int i = 0; i < STABILITY_FIELDS; i++) {
        Py_XDECREF(fields[i]);
    }
    return NULL;
}

/* The same numbers as the last window (no login between them), this window's days. */
static PyObject *
same_as(const Helpers *h, PyObject *window, PyObject *previous)
{
    PyObject *fields[STABILITY_FIELDS];
    fields[0] = PyObject_GetItem(h->window_days, window);
    for (int i = 1; i < STABILITY_FIELDS; i++) {
        fields[i] = PyTuple_GET_ITEM(previous, i);
        Py_INCREF(fields[i]);
    }
    return new_stability(fields);
}

/* One earlier login into the counters. */
static int
add_login(Walk *w, PyObject *event, PyObject *cur_device, PyObject **last, PyObject *tz,
          const Helpers *h)
{
    PyObject *device = PyTuple_GET_ITEM(event, F_DEVICE);
    PyObject *network = PyTuple_GET_ITEM(event, F_NETWORK);
    PyObject *hour = PyTuple_GET_ITEM(event, F_HOUR);
    int truth;

    w->sessions++;
    if ((truth = PyObject_IsTrue(PyTuple_GET_ITEM(event, F_RELAY))) < 0) {
        return -1;
    }
    if (truth) {
        w->relays++;
    }
    else {
        if ((truth = PyObject_IsTrue(PyTuple_GET_ITEM(event, F_ANONYMOUS))) < 0) {
            return -1;
        }
        w->anonymised += truth;
    }
    if ((truth = PyObject_IsTrue(device)) < 0) {
        return -1;
    }
    if (truth) {
        if (table_count(&w->devices, device, 0, &w->clock) < 0) {
            return -1;
        }
        int changed = compare(device, *last, Py_NE);
        if (changed < 0) {
            return -1;
        }
        if (changed) {
            w->changes++;
            *last = device;
        }
        int same = equal(device, cur_device);
        if (same < 0) {
            return -1;
        }
        if (same) {
            w->first_seen = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(event, F_TS));
            w->seen_before = 1;
        }
    }
    else if (device != Py_None) {
        w->blank_device = 1;
    }
    if ((truth = PyObject_IsTrue(network)) < 0) {
        return -1;
    }
    if (truth && table_count(&w->networks, network, 1, &w->clock) < 0) {
        return -1;
    }
    if (hour == Py_None) {
        PyObject *local = PyObject_CallFunctionObjArgs(
            h->local_hour, PyTuple_GET_ITEM(event, F_TS), tz, NULL);
        if (local == NULL) {
            return -1;
        }
        int status = table_count(&w->hours, local, 1, &w->clock);
        Py_DECREF(local);
        if (status < 0) {
            return -1;
        }
    }
    else if (table_count(&w->hours, hour, 1, &w->clock) < 0) {
        return -1;
    }
    if (table_add(&w->ips, PyTuple_GET_ITEM(event, F_IP), &w->clock) < 0
        || table_add(&w->asns, PyTuple_GET_ITEM(event, F_ASN), &w->clock) < 0
        || table_add(&w->provinces, PyTuple_GET_ITEM(event, F_PROVINCE), &w->clock) < 0) {
        return -1;
    }
    return 0;
}

/* One earlier login's value against this login's (a carrier, a network type): the
 * walk stops looking (``open``) at the first match, and notes any other non-null
 * value (``known``), as _new_from reads them. */
static int
seen_before(PyObject *value, PyObject *wanted, int *open, int *known)
{
    if (!*open) {
        return 0;
    }
    int same = equal(value, wanted);
    if (same < 0) {
        return -1;
    }
    if (same) {
        *open = 0;
    }
    else if (value != Py_None) {
        *known = 1;
    }
    return 0;
}

/* The carrier's and network type's "seen before" flags, for one earlier login. */
static int
add_flags(Walk *w, PyObject *event, PyObject *current)
{
    if (seen_before(PyTuple_GET_ITEM(event, F_CARRIER), PyTuple_GET_ITEM(current, F_CARRIER),
                    &w->carrier_open, &w->carrier_known) < 0) {
        return -1;
    }
    return seen_before(PyTuple_GET_ITEM(event, F_NETWORK_TYPE),
                       PyTuple_GET_ITEM(current, F_NETWORK_TYPE), &w->type_open,
                       &w->type_known);
}

/* A window's length as the Python walk reads it: a float that is no NaN, or an int
 * a double holds exactly (rules give whole seconds); 0 for anything else. */
static int
window_seconds(PyObject *window, double *out)
{
    if (PyFloat_CheckExact(window)) {
        *out = PyFloat_AS_DOUBLE(window);
        return !Py_IS_NAN(*out);
    }
    if (PyLong_CheckExact(window)) {
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(window, &overflow);
        const long long exact = 1LL << 53;
        if (overflow || value < -exact || value > exact) {
            PyErr_Clear();
            return 0;
        }
        *out = (double)value;
        return 1;
    }
    return 0;
}

/* A LoginEvent itself (not a subclass, whose fields could be read otherwise by name
 * than by place) with a float time. */
static int
is_event(PyObject *event)
{
    return Py_IS_TYPE(event, (PyTypeObject *)g_login_event)
           && PyTuple_GET_SIZE(event) == EVENT_FIELDS
           && PyFloat_CheckExact(PyTuple_GET_ITEM(event, F_TS));
}

/* A new reference to a tuple of ``items`` (a tuple as it is, a list copied), or NULL
 * without an error for any other type. */
static PyObject *
as_tuple(PyObject *items)
{
    if (PyTuple_CheckExact(items)) {
        Py_INCREF(items);
        return items;
    }
    if (PyList_CheckExact(items)) {
        return PyList_AsTuple(items);
    }
    return NULL;
}

static int
load_helpers(Helpers *h)
{
    h->shares = PyDict_GetItemWithError(g_namespace, g_key_shares);
    h->window_days = h->shares ? PyDict_GetItemWithError(g_namespace, g_key_window_days) : NULL;
    h->entropies = h->window_days ? PyDict_GetItemWithError(g_namespace, g_key_entropies) : NULL;
    h->local_hour = h->entropies ? PyDict_GetItemWithError(g_namespace, g_key_local_hour) : NULL;
    if (h->local_hour == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "the stability module lost a helper");
        }
        h->shares = h->window_days = h->entropies = NULL;
        return -1;
    }
    Py_INCREF(h->shares);
    Py_INCREF(h->window_days);
    Py_INCREF(h->entropies);
    Py_INCREF(h->local_hour);
    return 0;
}

/* A walk's counters, empty, each table's slots in place (by id: packed_stability). */
static void
walk_init(Walk *w, int by_id)
{
    memset(w, 0, sizeof *w);
    Table *tables[] = {&w->devices, &w->networks, &w->hours, &w->ips, &w->asns, &w->provinces};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        tables[i]->slots = tables[i]->inline_slots;
        tables[i]->mask = INLINE_SLOTS - 1;
        tables[i]->by_id = by_id;
    }
}

static void
walk_free(Walk *w)
{
    Table *tables[] = {&w->devices, &w->networks, &w->hours, &w->ips, &w->asns, &w->provinces};
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        table_free(tables[i]);
    }
    Py_CLEAR(w->cur_hour);
}

static void
helpers_free(Helpers *h)
{
    Py_CLEAR(h->shares);
    Py_CLEAR(h->window_days);
    Py_CLEAR(h->entropies);
    Py_CLEAR(h->local_hour);
}

/* This login's hour (its own, or _local_hour(ts, tz) when it has none), kept in the
 * walk: 0, or -1 with an error. */
static int
walk_hour(Walk *w, const Helpers *h, PyObject *current, PyObject *tz)
{
    w->cur_hour = PyTuple_GET_ITEM(current, F_HOUR);
    if (w->cur_hour != Py_None) {
        Py_INCREF(w->cur_hour);
        return 0;
    }
    w->cur_hour = PyObject_CallFunctionObjArgs(h->local_hour, PyTuple_GET_ITEM(current, F_TS),
                                               tz, NULL);
    return w->cur_hour == NULL ? -1 : 0;
}

/* The windows' lengths and their order, shortest first, ties in the order given
 * (sorted() is stable): 1, or 0 for a window the walk does not take. */
static int
order_windows(PyObject *windows, double *seconds, Py_ssize_t *order)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(windows); i++) {
        if (!window_seconds(PyTuple_GET_ITEM(windows, i), &seconds[i])) {
            return 0;
        }
        Py_ssize_t j = i;
        while (j > 0 && seconds[order[j - 1]] > seconds[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    return 1;
}

/* What one walk looks up of this login's values when a window needs a snapshot. */
typedef int (*LookUp)(const Walk *w, PyObject *current, const void *ids, Looked *out);

/* One window's Stability: the last one's numbers when no login came between them
 * (same_as), else a snapshot (``*previous`` becomes it). */
static PyObject *
window_stability(const Helpers *h, PyObject *window, PyObject *current, double share,
                 const Walk *w, LookUp look, const void *ids, PyObject **previous)
{
    if (*previous != NULL && PyLong_AsLong(PyTuple_GET_ITEM(*previous, 1)) == w->sessions) {
        return same_as(h, window, *previous);
    }
    Looked looked;
    if (look(w, current, ids, &looked) < 0) {
        return NULL;
    }
    *previous = snapshot(h, window, current, share, w, &looked);
    return *previous;
}

static int
look_up_objects(const Walk *w, PyObject *current, const void *ids, Looked *out)
{
    return look_up(w, current, out);
}

static PyObject *
stability_windows(PyObject *self, PyObject *args)
{
    PyObject *history_in, *current, *windows_in, *tz, *share_in;
    if (g_namespace == NULL || g_login_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "fingerprint._native is not bound");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OOOOO:stability_windows", &history_in, &current, &windows_in,
                          &tz, &share_in)) {
        return NULL;
    }
    if (!is_event(current) || !PyFloat_CheckExact(share_in)) {
        Py_RETURN_NONE;
    }
    PyObject *history = as_tuple(history_in);
    if (history == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *windows = as_tuple(windows_in);
    if (windows == NULL) {
        Py_DECREF(history);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_ssize_t count_windows = PyTuple_GET_SIZE(windows);
    Py_ssize_t events = PyTuple_GET_SIZE(history);
    for (Py_ssize_t i = 0; i < count_windows; i++) {
        double ignored;
        if (!window_seconds(PyTuple_GET_ITEM(windows, i), &ignored)) {
            Py_DECREF(history);
            Py_DECREF(windows);
            Py_RETURN_NONE;
        }
    }
    for (Py_ssize_t i = 0; i < events; i++) {
        if (!is_event(PyTuple_GET_ITEM(history, i))) {
            Py_DECREF(history);
            Py_DECREF(windows);
            Py_RETURN_NONE;
        }
    }

    double share = PyFloat_AS_DOUBLE(share_in);
    Helpers h = {NULL, NULL, NULL, NULL};
    Walk w;
    walk_init(&w, 0);
    Py_ssize_t *order = NULL;
    double *seconds = NULL;
    PyObject *results = PyList_New(count_windows);
    if (results == NULL || count_windows == 0) {
        goto done;
    }
    if (load_helpers(&h) < 0) {
        goto fail;
    }
    order = PyMem_New(Py_ssize_t, count_windows);
    seconds = PyMem_New(double, count_windows);
    if (order == NULL || seconds == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    order_windows(windows, seconds, order);  /* each checked above */

    PyObject *cur_ts = PyTuple_GET_ITEM(current, F_TS);
    PyObject *cur_device = PyTuple_GET_ITEM(current, F_DEVICE);
    PyObject *cur_network = PyTuple_GET_ITEM(current, F_NETWORK);
    if (walk_hour(&w, &h, current, tz) < 0) {
        goto fail;
    }
    /* This login: in every window, counted by the dicts, kept out of the sets. */
    PyObject *last = Py_None;  /* borrowed: a device of this login or of history */
    int truth = PyObject_IsTrue(cur_device);
    if (truth < 0) {
        goto fail;
    }
    if (truth) {
        if (table_count(&w.devices, cur_device, 0, &w.clock) < 0) {
            goto fail;
        }
        w.changes = 1;
        last = cur_device;
    }
    if ((truth = PyObject_IsTrue(cur_network)) < 0) {
        goto fail;
    }
    if (truth && table_count(&w.networks, cur_network, 0, &w.clock) < 0) {
        goto fail;
    }
    if (table_count(&w.hours, w.cur_hour, 0, &w.clock) < 0) {
        goto fail;
    }
    w.carrier_open = PyTuple_GET_ITEM(current, F_CARRIER) != Py_None;
    w.type_open = PyTuple_GET_ITEM(current, F_NETWORK_TYPE) != Py_None;
    if ((truth = PyObject_IsTrue(PyTuple_GET_ITEM(current, F_RELAY))) < 0) {
        goto fail;
    }
    w.relays = truth;
    if (!w.relays) {
        if ((truth = PyObject_IsTrue(PyTuple_GET_ITEM(current, F_ANONYMOUS))) < 0) {
            goto fail;
        }
        w.anonymised = truth;
    }

    double now = PyFloat_AS_DOUBLE(cur_ts);
    Py_ssize_t next = events - 1;  /* newest to oldest */
    PyObject *previous = NULL;     /* borrowed from results */
    for (Py_ssize_t o = 0; o < count_windows; o++) {
        Py_ssize_t k = order[o];
        double since = now - seconds[k];
        /* ">=" as in Python: a NaN ts ends the walk there too. */
        while (next >= 0) {
            PyObject *event = PyTuple_GET_ITEM(history, next);
            if (!(PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(event, F_TS)) >= since)) {
                break;
            }
            if (add_login(&w, event, cur_device, &last, tz, &h) < 0
                || add_flags(&w, event, current) < 0) {
                goto fail;
            }
            next--;
        }
        PyObject *found = window_stability(&h, PyTuple_GET_ITEM(windows, k), current, share, &w,
                                           look_up_objects, NULL, &previous);
        if (found == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(results, k, found);  /* steals */
    }
    goto done;
fail:
    Py_CLEAR(results);
done:
    PyMem_Free(order);
    PyMem_Free(seconds);
    walk_free(&w);
    helpers_free(&h);
    Py_DECREF(history);
    Py_DECREF(windows);
    return results;
}

/* Keep ``type`` in ``*slot`` if it is a tuple type (records are named tuples). */
static int
keep_tuple_type(PyObject *type, PyObject **slot, const char *what)
{
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple type", what);
        return -1;
    }
    Py_INCREF(type);
    Py_XSETREF(*slot, type);
    return 0;
}

static PyObject *
bind_event(PyObject *self, PyObject *args)
{
    PyObject *login_event;
    if (!PyArg_ParseTuple(args, "O!:bind_event", &PyType_Type, &login_event)
        || keep_tuple_type(login_event, &g_login_event, "LoginEvent") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
bind_stability(PyObject *self, PyObject *args)
{
    PyObject *namespace, *stability;
    if (!PyArg_ParseTuple(args, "O!O!:bind_stability", &PyDict_Type, &namespace, &PyType_Type,
                          &stability)
        || keep_tuple_type(stability, &g_stability, "Stability") < 0) {
        return NULL;
    }
    PyObject *memo = PyDict_GetItemWithError(namespace, g_key_entropies);
    if (memo == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "the namespace has no _ENTROPIES");
        }
        return NULL;
    }
    Py_INCREF(namespace);
    Py_XSETREF(g_namespace, namespace);
    Py_INCREF(Py_TYPE(memo));
    Py_XSETREF(g_memo_type, (PyObject *)Py_TYPE(memo));
    Py_RETURN_NONE;
}

/* history.py's packed record: "<dq4sHHHHHHHbB" (ts, session digest, the IPv4
 * address's bytes, the symbols of device, IP, network, place, ASN, carrier and
 * network type, the hour, the flags), 36 bytes, little-endian. */
#define RECORD_SIZE 36
enum { PACKED_ANONYMOUS = 1, PACKED_V4 = 2, DERIVED_NETWORK = 4, PACKED_RELAY = 8 };

static unsigned
le_u16(const unsigned char *at)
{
    return (unsigned)at[0] | (unsigned)at[1] << 8;
}

static unsigned long long
le_u64(const unsigned char *at)
{
    unsigned long long value = 0;
    for (int i = 7; i >= 0; i--) {
        value = value << 8 | at[i];
    }
    return value;
}

static double
le_double(const unsigned char *at)
{
    unsigned long long bits = le_u64(at);
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* symbols[index], a new reference (IndexError past the table, as Python's). */
static PyObject *
symbol(PyObject *symbols, unsigned index)
{
    if ((Py_ssize_t)index >= PyTuple_GET_SIZE(symbols)) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return NULL;
    }
    PyObject *value = PyTuple_GET_ITEM(symbols, index);
    Py_INCREF(value);
    return value;
}

/* An IPv4 address's text as inet_ntoa writes it ("a.b.c.d"), or with block its /24's
 * ("a.b.c.0/24"), into out (at least 19 bytes); returns its length. Written by hand:
 * snprintf took ~0.1 µs an address, twice for each login a window decodes. */
static int
write_v4(char *out, const unsigned char v4[4], int block)
{
    int n = 0;
    for (int i = 0; i < 4; i++) {
        unsigned octet = block && i == 3 ? 0 : v4[i];
        if (i > 0) {
            out[n++] = '.';
        }
        if (octet >= 100) {
            out[n++] = (char)('0' + octet / 100);
        }
        if (octet >= 10) {
            out[n++] = (char)('0' + octet / 10 % 10);
        }
        out[n++] = (char)('0' + octet % 10);
    }
    if (block) {
        memcpy(out + n, "/24", 3);
        n += 3;
    }
    return n;
}

/* write_v4's text as a str (ASCII: its bytes copied in, nothing decoded). */
static PyObject *
v4_str(const unsigned char v4[4], int block)
{
    char text[20];
    int n = write_v4(text, v4, block);
    PyObject *made = PyUnicode_New(n, 127);
    if (made != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(made), text, (size_t)n);
    }
    return made;
}

/* One packed login as a LoginEvent (see _unpack). */
static PyObject *
unpack_one(const unsigned char *r, PyObject *account, PyObject *symbols)
{
    double ts = le_double(r);
    long long digest = (long long)le_u64(r + 8);
    const unsigned char *v4 = r + 16;
    unsigned device = le_u16(r + 20), ip = le_u16(r + 22), network = le_u16(r + 24);
    unsigned place = le_u16(r + 26), asn = le_u16(r + 28), carrier = le_u16(r + 30);
    unsigned kind = le_u16(r + 32);
    int hour = (signed char)r[34];
    unsigned flags = r[35];
    PyObject *f[EVENT_FIELDS] = {NULL};

    PyObject *found = symbol(symbols, place);  /* symbols[place] or (None,) * 4 */
    if (found == NULL) {
        return NULL;
    }
    int truth = PyObject_IsTrue(found);
    if (truth < 0) {
        Py_DECREF(found);
        return NULL;
    }
    if (truth && !(PyTuple_Check(found) && PyTuple_GET_SIZE(found) == 4)) {
        Py_DECREF(found);
        PyErr_SetString(PyExc_ValueError, "a place is four values");
        return NULL;
    }
    for (int i = 0; i < 4; i++) {
        PyObject *value = truth ? PyTuple_GET_ITEM(found, i) : Py_None;
        Py_INCREF(value);
        f[5 + i] = value;  /* province, latitude, longitude, accuracy_km */
    }
    Py_DECREF(found);

    f[0] = PyFloat_FromDouble(ts);
    f[1] = PyLong_FromLongLong(digest);
    Py_INCREF(account);
    f[2] = account;
    f[3] = symbol(symbols, device);
    if (flags & PACKED_V4) {
        f[4] = v4_str(v4, 0);
    }
    else {
        PyObject *value = symbol(symbols, ip);  /* symbols[ip] or "" */
        if (value != NULL && (truth = PyObject_IsTrue(value)) <= 0) {
            Py_DECREF(value);
            value = truth < 0 ? NULL : PyUnicode_FromStringAndSize("", 0);
        }
        f[4] = value;
    }
    f[9] = PyBool_FromLong((flags & PACKED_ANONYMOUS) == 1);
    if (flags & DERIVED_NETWORK) {
        f[10] = v4_str(v4, 1);
    }
    else {
        f[10] = symbol(symbols, network);
    }
    f[11] = symbol(symbols, asn);
    f[12] = symbol(symbols, kind);
    f[13] = symbol(symbols, carrier);
    if (hour < 0) {
        Py_INCREF(Py_None);
        f[14] = Py_None;
    }
    else {
        f[14] = PyLong_FromLong(hour);
    }
    f[15] = PyBool_FromLong((flags & PACKED_RELAY) != 0);
    return new_record(g_login_event, f, EVENT_FIELDS);
}

/* -1, with a RuntimeError, until bind_event has named history's LoginEvent. */
static int
need_event(void)
{
    if (g_login_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "fingerprint._native is not bound");
        return -1;
    }
    return 0;
}

static PyObject *
unpack_window(PyObject *self, PyObject *args)
{
    PyObject *account, *symbols;
    Py_buffer records;
    Py_ssize_t start, stop;
    if (need_event() < 0) {
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "Oy*O!nn:unpack_window", &account, &records, &PyTuple_Type,
                          &symbols, &start, &stop)) {
        return NULL;
    }
    PyObject *logins = NULL;
    if (start < 0 || stop < start || stop > records.len / RECORD_SIZE) {
        PyErr_SetString(PyExc_ValueError, "logins outside the window");
        goto done;
    }
    logins = PyTuple_New(stop - start);
    if (logins == NULL) {
        goto done;
    }
    const unsigned char *at = (const unsigned char *)records.buf;
    for (Py_ssize_t i = start; i < stop; i++) {
        PyObject *login = unpack_one(at + i * RECORD_SIZE, account, symbols);
        if (login == NULL) {
            Py_CLEAR(logins);
            goto done;
        }
        PyTuple_SET_ITEM(logins, i - start, login);
    }
done:
    PyBuffer_Release(&records);
    return logins;
}

/* ---- Packing: fingerprint.history._pack ---- */

/* The index of ``value`` in the window's symbol table, appended when new (0 for
 * None): ``value in symbols`` then ``symbols.index(value)``, in one pass of the same
 * comparisons (list.__contains__ and list.index compare item == value alike). */
static Py_ssize_t
symbol_ref(PyObject *symbols, PyObject *value)
{
    if (value == Py_None) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(symbols); i++) {
        PyObject *item = PyList_GET_ITEM(symbols, i);
        Py_INCREF(item);
        int same = PyObject_RichCompareBool(item, value, Py_EQ);
        Py_DECREF(item);
        if (same != 0) {
            return same < 0 ? -1 : i;
        }
    }
    if (PyList_Append(symbols, value) < 0) {
        return -1;
    }
    return PyList_GET_SIZE(symbols) - 1;
}

/* fingerprint._session_values.dotted_quad: the 4 bytes of an IPv4 address written
 * as inet_ntoa writes one (four decimal numbers 0-255, no leading zero), else 0. */
static int
quad_prefix(const char *s, Py_ssize_t n, unsigned char out[4], Py_ssize_t *end);

static int
dotted_quad(PyObject *text, unsigned char out[4])
{
    if (!PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    Py_ssize_t end;
    return quad_prefix((const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), out,
                       &end) && end == PyUnicode_GET_LENGTH(text);
}

/* A dotted quad (as dotted_quad reads one) at the start of ``s``, ending at *end. */
static int
quad_prefix(const char *s, Py_ssize_t n, unsigned char out[4], Py_ssize_t *end)
{
    Py_ssize_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0) {
            if (i >= n || s[i] != '.') {
                return 0;
            }
            i++;
        }
        Py_ssize_t start = i;
        unsigned value = 0;
        while (i < n && i - start < 3 && s[i] >= '0' && s[i] <= '9') {
            value = value * 10 + (unsigned)(s[i] - '0');
            i++;
        }
        if (i == start || (i - start > 1 && s[start] == '0') || value > 255) {
            return 0;
        }
        out[part] = (unsigned char)value;
    }
    *end = i;
    return 1;
}

static int
text_or_none(PyObject *value)
{
    return value == Py_None || PyUnicode_CheckExact(value);
}

/* A value of a place: None, text or a number of the exact built-in types, which no
 * equals None but None (so a place of four Nones is the only "no place"). */
static int
place_value(PyObject *value)
{
    return text_or_none(value) || PyFloat_CheckExact(value) || PyLong_CheckExact(value);
}

static void
put_le(unsigned char *at, unsigned long long value, int size)
{
    for (int i = 0; i < size; i++) {
        at[i] = (unsigned char)(value >> (8 * i));
    }
}

/* The shared copy of a place: ``places.get(found) or share_place(found)``. */
static PyObject *
shared_place(PyObject *found, PyObject *places, PyObject *share_place)
{
    PyObject *known = PyDict_GetItemWithError(places, found);
    if (known != NULL) {
        int truth = PyObject_IsTrue(known);
        if (truth < 0) {
            return NULL;
        }
        if (truth) {
            Py_INCREF(known);
            return known;
        }
    }
    else if (PyErr_Occurred()) {
        return NULL;
    }
    return PyObject_CallOneArg(share_place, found);
}

/* One login packed into ``record`` (see pack_login): 1, with the device's symbol
 * index in ``*device_ref``; 0 for a login the Python packer must take (nothing added
 * to the symbols, or, past 65,535 symbols, what the Python packer adds before it
 * raises); -1 with an error set. */
static int
pack_record(PyObject *event, PyObject *symbols, PyObject *places, PyObject *share_place,
            unsigned char record[RECORD_SIZE], Py_ssize_t *device_ref)
{
    /* The common case only, checked before anything is touched: for the rest (an
     * int time, a subclass, a bool hour ...) the Python function answers. */
    if (Py_TYPE(event) != (PyTypeObject *)g_login_event
        || PyTuple_GET_SIZE(event) != EVENT_FIELDS || !PyList_CheckExact(symbols)) {
        return 0;
    }
    PyObject *ts = PyTuple_GET_ITEM(event, F_TS);
    PyObject *digest = PyTuple_GET_ITEM(event, F_DIGEST);
    PyObject *ip = PyTuple_GET_ITEM(event, F_IP);
    PyObject *network = PyTuple_GET_ITEM(event, F_NETWORK);
    PyObject *hour = PyTuple_GET_ITEM(event, F_HOUR);
    PyObject *anonymous = PyTuple_GET_ITEM(event, F_ANONYMOUS);
    PyObject *relay = PyTuple_GET_ITEM(event, F_RELAY);
    int digest_overflow = 0, hour_overflow = 0;  /* each call resets its own */
    long long digest_value = PyLong_CheckExact(digest)
        ? PyLong_AsLongLongAndOverflow(digest, &digest_overflow) : 0;
    long hour_value = hour == Py_None ? -1 : PyLong_CheckExact(hour)
        ? PyLong_AsLongAndOverflow(hour, &hour_overflow) : LONG_MAX;
    if (!PyFloat_CheckExact(ts) || !PyLong_CheckExact(digest) || digest_overflow
        || hour_overflow || !PyUnicode_CheckExact(ip) || !text_or_none(network) || !PyBool_Check(anonymous)
        || !PyBool_Check(relay) || hour_value < -128 || hour_value > 127) {
        return 0;
    }
    int no_place = 1;
    for (int i = F_PROVINCE; i < F_PROVINCE + 4; i++) {
        PyObject *value = PyTuple_GET_ITEM(event, i);
        if (!place_value(value)) {
            return 0;
        }
        no_place &= value == Py_None;
    }

    PyObject *place = Py_None;  /* strong once found */
    Py_INCREF(place);
    if (!no_place) {
        PyObject *found = PyTuple_GetSlice(event, F_PROVINCE, F_PROVINCE + 4);
        Py_SETREF(place, found == NULL ? NULL : shared_place(found, places, share_place));
        Py_XDECREF(found);
        if (place == NULL) {
            return -1;
        }
    }
    unsigned char v4[4] = {0, 0, 0, 0};
    int packed_v4 = dotted_quad(ip, v4);
    if (!packed_v4) {
        memset(v4, 0, sizeof v4);  /* the parse may have stopped part-way */
    }
    unsigned flags = (anonymous == Py_True ? PACKED_ANONYMOUS : 0)
        | (packed_v4 ? PACKED_V4 : 0) | (relay == Py_True ? PACKED_RELAY : 0);
    if (packed_v4 && network != Py_None) {
        char text[20];
        text[write_v4(text, v4, 1)] = '\0';
        if (PyUnicode_CompareWithASCIIString(network, text) == 0) {
            flags |= DERIVED_NETWORK;
        }
    }
    /* The symbols in the order _pack's arguments name them. */
    Py_ssize_t refs[7];
    refs[0] = symbol_ref(symbols, PyTuple_GET_ITEM(event, F_DEVICE));
    refs[1] = refs[0] < 0 ? -1 : packed_v4 ? 0 : symbol_ref(symbols, ip);
    refs[2] = refs[1] < 0 ? -1 : (flags & DERIVED_NETWORK) ? 0 : symbol_ref(symbols, network);
    refs[3] = refs[2] < 0 ? -1 : symbol_ref(symbols, place);
    refs[4] = refs[3] < 0 ? -1 : symbol_ref(symbols, PyTuple_GET_ITEM(event, F_ASN));
    refs[5] = refs[4] < 0 ? -1 : symbol_ref(symbols, PyTuple_GET_ITEM(event, F_CARRIER));
    refs[6] = refs[5] < 0 ? -1 : symbol_ref(symbols, PyTuple_GET_ITEM(event, F_NETWORK_TYPE));
    Py_DECREF(place);
    if (refs[6] < 0) {
        return -1;
    }
    for (int i = 0; i < 7; i++) {
        if (refs[i] > 0xFFFF) {
            /* Past an unsigned short: the Python function raises struct.error (the
             * symbols it added stay, as they do there). */
            return 0;
        }
    }
    double ts_value = PyFloat_AS_DOUBLE(ts);
    unsigned long long bits;
    memcpy(&bits, &ts_value, sizeof bits);
    put_le(record, bits, 8);
    put_le(record + 8, (unsigned long long)digest_value, 8);
    memcpy(record + 16, v4, 4);
    for (int i = 0; i < 7; i++) {
        put_le(record + 20 + 2 * i, (unsigned long long)refs[i], 2);
    }
    record[34] = (unsigned char)(signed char)hour_value;
    record[35] = (unsigned char)flags;
    *device_ref = refs[0];
    return 1;
}

static PyObject *
pack_login(PyObject *self, PyObject *args)
{
    PyObject *event, *symbols, *places, *share_place;
    if (need_event() < 0) {
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!O!O:pack_login", &event, &PyList_Type, &symbols,
                          &PyDict_Type, &places, &share_place)) {
        return NULL;
    }
    unsigned char record[RECORD_SIZE];
    Py_ssize_t device_ref;
    int packed = pack_record(event, symbols, places, share_place, record, &device_ref);
    if (packed <= 0) {
        if (packed < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    return PyBytes_FromStringAndSize((const char *)record, RECORD_SIZE);
}

/* A little-endian double at ``at`` (a record's ts). */
/* fingerprint.history.MemoryHistoryStore._record_in_order's window: the login
 * appended to ``window`` (a _Window: its records and symbols) when it is the newest
 * of a window that keeps every login, as (the new window, the logins before it, the
 * window's own copy of the device id or None). None for any other call, before
 * anything is touched but the shared places: the Python method then answers. */
static PyObject *
append_login(PyObject *self, PyObject *args)
{
    PyObject *window_type, *window, *event, *max_in, *seconds_in, *places, *share_place;
    if (need_event() < 0) {
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OOOOO!O:append_login", &PyType_Type, &window_type, &window,
                          &event, &max_in, &seconds_in, &PyDict_Type, &places, &share_place)) {
        return NULL;
    }
    /* The window's bounds as Python compares them: an int cap, seconds a float that is
     * no NaN or an int a double holds exactly (window_seconds); else Python answers. */
    double account_seconds;
    int overflow = 0;
    long long max_events = PyLong_CheckExact(max_in)
        ? PyLong_AsLongLongAndOverflow(max_in, &overflow) : 0;
    if (max_events == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyLong_CheckExact(max_in) || overflow || !window_seconds(seconds_in, &account_seconds)
        || Py_TYPE(window) != (PyTypeObject *)window_type
        || !PyType_IsSubtype((PyTypeObject *)window_type, &PyTuple_Type)
        || PyTuple_GET_SIZE(window) != 2 || Py_TYPE(event) != (PyTypeObject *)g_login_event
        || PyTuple_GET_SIZE(event) != EVENT_FIELDS
        || !PyFloat_CheckExact(PyTuple_GET_ITEM(event, F_TS))
        || !text_or_none(PyTuple_GET_ITEM(event, F_DEVICE))) {
        Py_RETURN_NONE;
    }
    PyObject *records = PyTuple_GET_ITEM(window, 0);
    PyObject *table = PyTuple_GET_ITEM(window, 1);
    if (!PyBytes_CheckExact(records) || !PyTuple_CheckExact(table)
        || PyBytes_GET_SIZE(records) % RECORD_SIZE) {
        Py_RETURN_NONE;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(records), logins = size / RECORD_SIZE;
    if (logins + 1 > max_events) {
        Py_RETURN_NONE;
    }
    const unsigned char *at = (const unsigned char *)PyBytes_AS_STRING(records);
    double ts = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(event, F_TS));
    double first = logins ? le_double(at) : ts;
    double last = logins ? le_double(at + size - RECORD_SIZE) : ts;
    /* Positive tests, as in Python: a NaN time fails them. */
    if (!(ts >= last && first >= ts - account_seconds)) {
        Py_RETURN_NONE;
    }
    PyObject *symbols = PySequence_List(table);
    if (symbols == NULL) {
        return NULL;
    }
    PyObject *result = NULL, *grown = NULL, *kept = NULL, *read = NULL;
    unsigned char record[RECORD_SIZE];
    Py_ssize_t device_ref = 0;
    int packed = pack_record(event, symbols, places, share_place, record, &device_ref);
    if (packed <= 0 || PyList_GET_SIZE(symbols) >= 0xFFFF / 2) {  /* _trim rebuilds it */
        if (packed >= 0) {
            result = Py_None;
            Py_INCREF(result);
        }
        goto done;
    }
    grown = PyBytes_FromStringAndSize(NULL, size + RECORD_SIZE);
    kept = grown == NULL ? NULL : PyList_AsTuple(symbols);
    if (kept == NULL) {
        goto done;
    }
    memcpy(PyBytes_AS_STRING(grown), at, (size_t)size);
    memcpy(PyBytes_AS_STRING(grown) + size, record, RECORD_SIZE);
    /* Allocated as tuple.__new__(_Window, (records, symbols)) allocates it. */
    read = ((PyTypeObject *)window_type)->tp_alloc((PyTypeObject *)window_type, 2);
    if (read == NULL) {
        goto done;
    }
    PyTuple_SET_ITEM(read, 0, grown);  /* steals */
    PyTuple_SET_ITEM(read, 1, kept);
    grown = kept = NULL;
    /* _own_copy: the symbol the device id was found as, or None for none or "". */
    PyObject *device = PyTuple_GET_ITEM(event, F_DEVICE);
    int truth = PyObject_IsTrue(device);
    if (truth < 0) {
        goto done;
    }
    PyObject *own = truth ? PyList_GET_ITEM(symbols, device_ref) : Py_None;
    result = Py_BuildValue("(OnO)", read, logins, own);
done:
    Py_XDECREF(read);
    Py_XDECREF(grown);
    Py_XDECREF(kept);
    Py_DECREF(symbols);
    return result;
}

/* ---- The stability walk over a packed window ----
 *
 * packed_stability() is stability_windows() over an account's packed window as the
 * memory store keeps it, without decoding it: the walk reads each login's 36 bytes
 * and counts ids, not the Python objects the decoded logins would hold. Within a
 * window, equal values are one symbol (the packer adds a value only when no symbol
 * equals it) and an IPv4 address or /24 lives in the record, so each distinct value
 * of a field maps to one id: an address to its 32 bits or its symbol, a network to
 * its /24 (derived, or a symbol written as one) or its symbol, a province to its text's
 * number in a table by value, an ASN, a device, a carrier or a network type to its
 * symbol. Each symbol is looked at once per call. It takes the values the checker
 * stores (text, ints, None, places of four); for any other symbol, or a login without
 * an hour, it returns None and the object walk answers. */

enum { SYM_UNSEEN = 0, SYM_NONE, SYM_EMPTY, SYM_TEXT, SYM_INT, SYM_OTHER };

#define ID_DECLINE ((Py_hash_t)0)
#define ID_NONE ((Py_hash_t)1)
#define ID_EMPTY ((Py_hash_t)2)
#define ID_V4 ((Py_hash_t)1 << 40)       /* | the address's 32 bits */
#define ID_BLOCK ((Py_hash_t)2 << 40)    /* | the /24's 24 bits */
#define ID_SYMBOL ((Py_hash_t)3 << 40)   /* | the symbol's index */
#define ID_PROVINCE ((Py_hash_t)4 << 40) /* | the province's number */
#define ID_ERROR ((Py_hash_t)-1)

/* The window's symbols as the walk has read them so far. */
typedef struct {
    PyObject *symbols;  /* tuple, borrowed */
    Py_ssize_t count;
    unsigned char *kinds;  /* SYM_* per symbol */
    Py_hash_t *addresses, *networks, *provinces;  /* ids per symbol (0: not yet) */
    Table names;  /* province text -> its number (the slot's count) */
} Names;

static int
symbol_kind(Names *n, unsigned index)
{
    if ((Py_ssize_t)index >= n->count) {
        return SYM_OTHER;  /* past the table: corrupt, the decoder raises */
    }
    if (n->kinds[index] == SYM_UNSEEN) {
        PyObject *value = PyTuple_GET_ITEM(n->symbols, index);
        n->kinds[index] = value == Py_None ? SYM_NONE
            : PyUnicode_CheckExact(value) ? (PyUnicode_GET_LENGTH(value) ? SYM_TEXT : SYM_EMPTY)
            : PyLong_CheckExact(value) ? SYM_INT : SYM_OTHER;
    }
    return n->kinds[index];
}

/* An IPv4 address's id from its 4 bytes. */
static Py_hash_t
v4_id(const unsigned char *v4)
{
    return ID_V4 | (Py_hash_t)((unsigned long)v4[0] << 24 | (unsigned long)v4[1] << 16
                               | (unsigned long)v4[2] << 8 | v4[3]);
}

/* The id of an address symbol (the decoder reads a false one as ""). */
static Py_hash_t
address_id(Names *n, unsigned index)
{
    int kind = symbol_kind(n, index);
    if (kind == SYM_NONE || kind == SYM_EMPTY) {
        return ID_EMPTY;
    }
    if (kind != SYM_TEXT) {
        return ID_DECLINE;
    }
    if (n->addresses[index] == 0) {
        unsigned char v4[4];
        PyObject *text = PyTuple_GET_ITEM(n->symbols, index);
        n->addresses[index] = dotted_quad(text, v4) ? v4_id(v4) : ID_SYMBOL | index;
    }
    return n->addresses[index];
}

/* The id of a network symbol that is text: its /24 when it is written as the packer
 * writes a derived one ("a.b.c.0/24"), else the symbol. */
static Py_hash_t
network_id(Names *n, unsigned index)
{
    if (n->networks[index] == 0) {
        PyObject *text = PyTuple_GET_ITEM(n->symbols, index);
        Py_hash_t id = ID_SYMBOL | index;
        unsigned char v4[4];
        Py_ssize_t end;
        if (PyUnicode_IS_ASCII(text)) {
            const char *at = (const char *)PyUnicode_1BYTE_DATA(text);
            Py_ssize_t size = PyUnicode_GET_LENGTH(text);
            if (quad_prefix(at, size, v4, &end) && v4[3] == 0 && size - end == 3
                && memcmp(at + end, "/24", 3) == 0) {
                id = ID_BLOCK | (Py_hash_t)((unsigned long)v4[0] << 16
                                            | (unsigned long)v4[1] << 8 | v4[2]);
            }
        }
        n->networks[index] = id;
    }
    return n->networks[index];
}

/* A province's id from its value: None, "", or text numbered by value (a new text
 * gets the next number). */
static Py_hash_t
province_value_id(Names *n, PyObject *province)
{
    if (province == Py_None) {
        return ID_NONE;
    }
    if (!PyUnicode_CheckExact(province)) {
        return ID_DECLINE;
    }
    if (PyUnicode_GET_LENGTH(province) == 0) {
        return ID_EMPTY;
    }
    Py_hash_t hash = PyObject_Hash(province);
    if (hash == -1) {
        return ID_ERROR;
    }
    Slot *slot = NULL;
    int found = table_find(&n->names, province, hash, &slot);
    if (found < 0) {
        return ID_ERROR;
    }
    long number = found ? slot->count : (long)n->names.used + 1;
    if (!found && table_insert(&n->names, province, hash, number, 0) < 0) {
        return ID_ERROR;
    }
    return ID_PROVINCE | number;
}

/* The id of a place symbol's province (symbols[0], None: no place). */
static Py_hash_t
province_id(Names *n, unsigned index)
{
    if ((Py_ssize_t)index >= n->count) {
        return ID_DECLINE;
    }
    if (n->provinces[index] == 0) {
        PyObject *place = PyTuple_GET_ITEM(n->symbols, index);
        Py_hash_t id;
        if (place == Py_None) {
            id = ID_NONE;
        }
        else if (PyTuple_CheckExact(place) && PyTuple_GET_SIZE(place) == 4) {
            id = province_value_id(n, PyTuple_GET_ITEM(place, 0));
        }
        else {
            id = ID_DECLINE;
        }
        if (id == ID_ERROR || id == ID_DECLINE) {
            return id;
        }
        n->provinces[index] = id;
    }
    return n->provinces[index];
}

/* A device, carrier or network type symbol is text or None. */
static int
text_symbol(Names *n, unsigned index)
{
    int kind = symbol_kind(n, index);
    return kind == SYM_NONE || kind == SYM_EMPTY || kind == SYM_TEXT;
}

/* This login's ids, from its LoginEvent and its own record in the window. */
typedef struct {
    unsigned device, carrier, kind;  /* symbol indexes (the device's: UINT_MAX when false) */
    Py_hash_t network, ip, asn, province;  /* network 0: none counted */
    long hour;
} Current;

/* 1 with *out filled, 0 to decline, -1 with an error. */
static int
current_ids(Names *n, PyObject *current, const unsigned char *r, PyObject *hour, Current *out)
{
    PyObject *device = PyTuple_GET_ITEM(current, F_DEVICE);
    PyObject *network = PyTuple_GET_ITEM(current, F_NETWORK);
    PyObject *ip = PyTuple_GET_ITEM(current, F_IP);
    PyObject *asn = PyTuple_GET_ITEM(current, F_ASN);
    if (!text_or_none(device) || !text_or_none(network) || !PyUnicode_CheckExact(ip)
        || !PyLong_CheckExact(hour) || !text_symbol(n, le_u16(r + 30))
        || !text_symbol(n, le_u16(r + 32))) {
        return 0;
    }
    int overflow = 0;
    out->hour = PyLong_AsLongAndOverflow(hour, &overflow);
    if (overflow || out->hour < 0 || out->hour > 127) {
        return 0;  /* an hour no packed login has: still the object walk's to count */
    }
    out->device = device != Py_None && PyUnicode_GET_LENGTH(device) ? le_u16(r + 20) : UINT_MAX;
    out->carrier = le_u16(r + 30);
    out->kind = le_u16(r + 32);
    out->network = 0;
    if (network != Py_None && PyUnicode_GET_LENGTH(network)) {
        if (r[35] & DERIVED_NETWORK) {
            out->network = ID_BLOCK | (Py_hash_t)((unsigned long)r[16] << 16
                                                  | (unsigned long)r[17] << 8 | r[18]);
        }
        else if (symbol_kind(n, le_u16(r + 24)) == SYM_TEXT) {
            out->network = network_id(n, le_u16(r + 24));
        }
        else {
            return 0;  /* not the record of this login */
        }
    }
    unsigned char v4[4];
    out->ip = PyUnicode_GET_LENGTH(ip) == 0 ? ID_EMPTY
        : dotted_quad(ip, v4) ? v4_id(v4) : ID_SYMBOL | le_u16(r + 22);
    if (asn == Py_None) {
        out->asn = ID_NONE;
    }
    else {
        int kind = symbol_kind(n, le_u16(r + 28));
        if (kind != SYM_INT && kind != SYM_TEXT) {
            return 0;
        }
        out->asn = ID_SYMBOL | le_u16(r + 28);
    }
    out->province = province_value_id(n, PyTuple_GET_ITEM(current, F_PROVINCE));
    if (out->province == ID_ERROR) {
        return -1;
    }
    return out->province != ID_DECLINE;
}

/* seen_before for a symbol of text or None (symbols[0]): 1, or 0 to decline. */
static int
seen_symbol(Names *n, unsigned value, unsigned wanted, int *open, int *known)
{
    if (!*open) {
        return 1;
    }
    if (!text_symbol(n, value)) {
        return 0;
    }
    if (value == wanted) {
        *open = 0;
    }
    else if (value != 0) {
        *known = 1;
    }
    return 1;
}

/* One earlier packed login into the counters: 1, 0 to decline, -1 with an error. */
static int
add_packed(Walk *w, Names *n, const unsigned char *r, const Current *cur, unsigned *last)
{
    unsigned device = le_u16(r + 20), network = le_u16(r + 24), place = le_u16(r + 26);
    unsigned asn = le_u16(r + 28), carrier = le_u16(r + 30), kind = le_u16(r + 32);
    int hour = (signed char)r[34];
    unsigned flags = r[35];
    if (hour < 0 || !text_symbol(n, device)) {
        return 0;
    }
    w->sessions++;
    if (flags & PACKED_RELAY) {
        w->relays++;
    }
    else if (flags & PACKED_ANONYMOUS) {
        w->anonymised++;
    }
    int device_kind = symbol_kind(n, device);
    if (device_kind == SYM_TEXT) {
        if (id_count(&w->devices, ID_SYMBOL | device, 0, &w->clock) < 0) {
            return -1;
        }
        if (device != *last) {
            w->changes++;
            *last = device;
        }
        if (device == cur->device) {
            w->first_seen = le_double(r);
            w->seen_before = 1;
        }
    }
    else if (device_kind == SYM_EMPTY) {
        w->blank_device = 1;
    }
    Py_hash_t id = 0;
    if (flags & DERIVED_NETWORK) {
        id = ID_BLOCK | (Py_hash_t)((unsigned long)r[16] << 16 | (unsigned long)r[17] << 8 | r[18]);
    }
    else {
        int network_kind = symbol_kind(n, network);
        if (network_kind == SYM_TEXT) {
            id = network_id(n, network);
        }
        else if (network_kind != SYM_NONE && network_kind != SYM_EMPTY) {
            return 0;
        }
    }
    if (id && id_count(&w->networks, id, 1, &w->clock) < 0) {
        return -1;
    }
    if (id_count(&w->hours, hour, 1, &w->clock) < 0) {
        return -1;
    }
    Py_hash_t address = (flags & PACKED_V4) ? v4_id(r + 16) : address_id(n, le_u16(r + 22));
    Py_hash_t province = province_id(n, place);
    int asn_kind = symbol_kind(n, asn);
    if (address == ID_DECLINE || province == ID_DECLINE
        || (asn_kind != SYM_NONE && asn_kind != SYM_INT && asn_kind != SYM_TEXT)) {
        return 0;
    }
    if (province == ID_ERROR) {
        return -1;
    }
    if (id_add(&w->ips, address, &w->clock) < 0
        || id_add(&w->asns, asn_kind == SYM_NONE ? ID_NONE : ID_SYMBOL | asn, &w->clock) < 0
        || id_add(&w->provinces, province, &w->clock) < 0) {
        return -1;
    }
    /* The carrier's and network type's "seen before": == on text is == on symbols. */
    return seen_symbol(n, carrier, cur->carrier, &w->carrier_open, &w->carrier_known)
        && seen_symbol(n, kind, cur->kind, &w->type_open, &w->type_known);
}

/* len(values) + (id not in values) - (none or None in values) [- (empty or "" in values)] */
static Py_ssize_t
distinct_ids(const Table *values, Py_hash_t id, int blank)
{
    Py_ssize_t found = values->used + !id_contains(values, id)
        - (id == ID_NONE || id_contains(values, ID_NONE));
    if (blank) {
        found -= id == ID_EMPTY || id_contains(values, ID_EMPTY);
    }
    return found;
}

static void
look_up_packed(const Walk *w, const Current *cur, Looked *out)
{
    out->province_seen = out->province_none = 0;
    if (cur->province != ID_NONE) {
        out->province_seen = id_contains(&w->provinces, cur->province);
        out->province_none = !out->province_seen && id_contains(&w->provinces, ID_NONE);
    }
    out->ips = distinct_ids(&w->ips, cur->ip, 1);
    out->asns = distinct_ids(&w->asns, cur->asn, 0);
    out->provinces = distinct_ids(&w->provinces, cur->province, 1);
    static const long night[6] = {23, 0, 1, 2, 3, 4};
    int found;
    out->night = 0;
    for (int i = 0; i < 6; i++) {
        out->night += id_get(&w->hours, night[i], &found);
    }
    out->hour_count = id_get(&w->hours, cur->hour, &out->hour_found);
}

static int
look_up_ids(const Walk *w, PyObject *current, const void *ids, Looked *out)
{
    look_up_packed(w, ids, out);
    return 0;
}

static PyObject *
entropy_sum_of(PyObject *self, PyObject *values)
{
    if (!PyTuple_CheckExact(values) || PyTuple_GET_SIZE(values) < 1) {
        PyErr_SetString(PyExc_TypeError, "entropy_sum takes a tuple of counts");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(values); i++) {
        PyObject *value = PyTuple_GET_ITEM(values, i);
        if (!PyLong_CheckExact(value) || PyLong_AsLongLong(value) < 1) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "counts are positive ints");
            }
            return NULL;
        }
    }
    return entropy_sum(values);
}

static PyObject *
packed_stability(PyObject *self, PyObject *args)
{
    PyObject *symbols, *current, *windows_in, *tz, *share_in;
    Py_buffer records;
    Py_ssize_t start, position;
    if (g_namespace == NULL || need_event() < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "fingerprint._native is not bound");
        }
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*O!nnOOOO:packed_stability", &records, &PyTuple_Type, &symbols,
                          &start, &position, &current, &windows_in, &tz, &share_in)) {
        return NULL;
    }
    PyObject *results = NULL, *windows = NULL;
    Helpers h = {NULL, NULL, NULL, NULL};
    Names n;
    memset(&n, 0, sizeof n);
    n.names.slots = n.names.inline_slots;
    n.names.mask = INLINE_SLOTS - 1;
    Walk w;
    walk_init(&w, 1);
    Py_ssize_t logins = records.len / RECORD_SIZE;
    const unsigned char *at = (const unsigned char *)records.buf;
    if (!is_event(current) || !PyFloat_CheckExact(share_in) || records.len % RECORD_SIZE
        || start < 0 || position < start || position >= logins
        || (windows = as_tuple(windows_in)) == NULL) {
        goto decline;
    }
    Py_ssize_t count_windows = PyTuple_GET_SIZE(windows);
    double seconds[8];
    Py_ssize_t order[8];
    if (count_windows == 0 || count_windows > 8 || !order_windows(windows, seconds, order)) {
        goto decline;
    }
    double share = PyFloat_AS_DOUBLE(share_in);
    n.symbols = symbols;
    n.count = PyTuple_GET_SIZE(symbols);
    if (n.count == 0) {
        goto decline;  /* symbols[0] is None in any window the store made */
    }
    n.kinds = PyMem_Calloc((size_t)n.count, 1);
    n.addresses = PyMem_Calloc((size_t)n.count * 3, sizeof(Py_hash_t));
    if (n.kinds == NULL || n.addresses == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    n.networks = n.addresses + n.count;
    n.provinces = n.networks + n.count;
    if (load_helpers(&h) < 0) {
        goto done;
    }
    if (walk_hour(&w, &h, current, tz) < 0) {
        goto done;
    }
    Current cur;
    int status = current_ids(&n, current, at + position * RECORD_SIZE, w.cur_hour, &cur);
    if (status <= 0) {
        if (status < 0) {
            goto done;
        }
        goto decline;
    }
    /* This login: in every window, counted by the dicts, kept out of the sets. */
    unsigned last = 0;  /* symbols[0] is None: no device */
    if (cur.device != UINT_MAX) {
        if (id_count(&w.devices, ID_SYMBOL | cur.device, 0, &w.clock) < 0) {
            goto done;
        }
        w.changes = 1;
        last = cur.device;
    }
    if ((cur.network && id_count(&w.networks, cur.network, 0, &w.clock) < 0)
        || id_count(&w.hours, cur.hour, 0, &w.clock) < 0) {
        goto done;
    }
    w.carrier_open = PyTuple_GET_ITEM(current, F_CARRIER) != Py_None;
    w.type_open = PyTuple_GET_ITEM(current, F_NETWORK_TYPE) != Py_None;
    w.relays = PyTuple_GET_ITEM(current, F_RELAY) == Py_True;
    w.anonymised = !w.relays && PyTuple_GET_ITEM(current, F_ANONYMOUS) == Py_True;
    if (!PyBool_Check(PyTuple_GET_ITEM(current, F_RELAY))
        || !PyBool_Check(PyTuple_GET_ITEM(current, F_ANONYMOUS))) {
        goto decline;
    }

    results = PyList_New(count_windows);
    if (results == NULL) {
        goto done;
    }
    double now = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(current, F_TS));
    Py_ssize_t next = position - 1;  /* newest to oldest */
    PyObject *previous = NULL;       /* borrowed from results */
    for (Py_ssize_t o = 0; o < count_windows; o++) {
        Py_ssize_t k = order[o];
        double since = now - seconds[k];
        while (next >= start) {
            const unsigned char *r = at + next * RECORD_SIZE;
            if (!(le_double(r) >= since)) {  /* as in Python: a NaN ends the walk */
                break;
            }
            status = add_packed(&w, &n, r, &cur, &last);
            if (status <= 0) {
                if (status < 0) {
                    goto fail;
                }
                Py_CLEAR(results);
                goto decline;
            }
            next--;
        }
        PyObject *found = window_stability(&h, PyTuple_GET_ITEM(windows, k), current, share, &w,
                                           look_up_ids, &cur, &previous);
        if (found == NULL) {
            goto fail;
        }
        PyList_SET_ITEM(results, k, found);  /* steals */
    }
    goto done;
decline:
    if (!PyErr_Occurred()) {
        results = Py_None;
        Py_INCREF(results);
    }
    goto done;
fail:
    Py_CLEAR(results);
done:
    PyBuffer_Release(&records);
    PyMem_Free(n.kinds);
    PyMem_Free(n.addresses);
    table_free(&n.names);
    walk_free(&w);
    helpers_free(&h);
    Py_XDECREF(windows);
    return results;
}

/* ---- Records as a JSON decoder makes them: fingerprint.session._fast_session ---- */

#define PLAIN_DEPTH 32

/* Whether the text holds a surrogate code point (a lone one: a str holds no pairs),
 * which UTF-8 cannot encode. */
static int
has_surrogate(PyObject *text)
{
    int kind = PyUnicode_KIND(text);
    if (kind == PyUnicode_1BYTE_KIND) {  /* Latin-1: no surrogate */
        return 0;
    }
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < PyUnicode_GET_LENGTH(text); i++) {
        Py_UCS4 code = PyUnicode_READ(kind, data, i);
        if (code >= 0xD800 && code <= 0xDFFF) {
            return 1;
        }
    }
    return 0;
}

/* An integer MessagePack holds: from -2**63 to 2**64 - 1. */
static int
packable_int(PyObject *value)
{
    int overflow = 0;
    PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow <= 0) {
        return overflow == 0;
    }
    PyLong_AsUnsignedLongLong(value);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* Made of exact dicts with text keys, lists, text without a surrogate, integers
 * MessagePack holds, floats, booleans and None, at most PLAIN_DEPTH deep. */
static int
plain_value(PyObject *value, int depth)
{
    PyTypeObject *type = Py_TYPE(value);
    if (type == &PyUnicode_Type) {
        return !has_surrogate(value);
    }
    if (type == &PyLong_Type) {
        return packable_int(value);
    }
    if (type == &PyFloat_Type || type == &PyBool_Type || value == Py_None) {
        return 1;
    }
    if (depth >= PLAIN_DEPTH) {
        return 0;
    }
    if (type == &PyDict_Type) {
        Py_ssize_t at = 0;
        PyObject *key, *item;
        while (PyDict_Next(value, &at, &key, &item)) {
            if (!PyUnicode_CheckExact(key) || has_surrogate(key) || !plain_value(item, depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    if (type == &PyList_Type) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(value); i++) {
            if (!plain_value(PyList_GET_ITEM(value, i), depth + 1)) {
                return 0;
            }
        }
        return 1;
    }
    return 0;
}

static PyObject *
plain_json(PyObject *self, PyObject *value)
{
    return PyBool_FromLong(PyDict_CheckExact(value) && plain_value(value, 0));
}

/* ---- A session's time and address, read as fingerprint._session_values reads them ----
 *
 * utc_time() is parse_timestamp for the two common spellings, and None for every
 * other (the Python function answers, with its messages): ISO 8601 text written
 * exactly "YYYY-MM-DD(T| )HH:MM:SS[.fff|.ffffff](Z|z|+HH:MM|-HH:MM)", and an exact
 * int of epoch seconds. The aware UTC datetime it makes is the one
 * datetime.fromisoformat(text).astimezone(UTC) makes (or _EPOCH + timedelta): the
 * same fields in the proleptic Gregorian calendar, tzinfo datetime.UTC. Only times
 * from 1990 to 2100 (parse_timestamp's range); outside it, Python says why.
 *
 * v4_address() is parse_ip for an address written as inet_ntoa writes one (four
 * decimal numbers 0-255, no leading zero, no space): the IPv4Address that
 * IPv4Address(packed) makes (its _ip, the address's number), else None. */

static PyObject *g_v4_type;  /* ipaddress.IPv4Address */
static PyObject *g_ip_attr;  /* "_ip" */
static PyObject *g_empty_args;
static PyObject *g_neg_inf;  /* -inf */

#define EARLIEST_EPOCH 631152000LL   /* 1990-01-01T00:00:00Z */
#define LATEST_EPOCH 4102444800LL    /* 2100-01-01T00:00:00Z */

/* Days from 1970-01-01 to y-m-d, and back (proleptic Gregorian; H. Hinnant's
 * algorithms, exact for every date here). */
static long long
days_from_civil(long long y, int m, int d)
{
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
civil_from_days(long long z, int *year, int *month, int *day)
{
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (m <= 2));
    *month = m;
    *day = d;
}

/* The number of n ASCII digits at s, or -1. */
static int
digits_at(const char *s, int n)
{
    int value = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        value = value * 10 + (s[i] - '0');
    }
    return value;
}

static int
days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* An aware UTC datetime of epoch seconds (in the range) and microseconds. */
static PyObject *
utc_datetime(long long seconds, int micro)
{
    int year, month, day;
    long long days = seconds / 86400, rest = seconds % 86400;  /* seconds >= 0 here */
    civil_from_days(days, &year, &month, &day);
    return PyDateTimeAPI->DateTime_FromDateAndTime(
        year, month, day, (int)(rest / 3600), (int)(rest / 60 % 60), (int)(rest % 60), micro,
        PyDateTime_TimeZone_UTC, PyDateTimeAPI->DateTimeType);
}

/* Epoch seconds and microseconds of the ISO text, or 0 where it is not written so. */
static int
iso_seconds(const char *s, Py_ssize_t length, long long *seconds, int *micro)
{
    if (length < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ')
        || s[13] != ':' || s[16] != ':') {
        return 0;
    }
    int year = digits_at(s, 4), month = digits_at(s + 5, 2), day = digits_at(s + 8, 2);
    int hour = digits_at(s + 11, 2), minute = digits_at(s + 14, 2), second = digits_at(s + 17, 2);
    if (year < 1 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)
        || hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59) {
        return 0;
    }
    Py_ssize_t at = 19;
    *micro = 0;
    if (s[at] == '.') {
        Py_ssize_t n = 0;
        while (at + 1 + n < length && s[at + 1 + n] >= '0' && s[at + 1 + n] <= '9') {
            n++;
        }
        if (n != 3 && n != 6) {
            return 0;
        }
        int fraction = digits_at(s + at + 1, (int)n);
        *micro = n == 3 ? fraction * 1000 : fraction;
        at += 1 + n;
    }
    long offset;  /* minutes east of UTC */
    if (at + 1 == length && (s[at] == 'Z' || s[at] == 'z')) {
        offset = 0;
    }
    else if (at + 6 == length && (s[at] == '+' || s[at] == '-') && s[at + 3] == ':') {
        int hours = digits_at(s + at + 1, 2), minutes = digits_at(s + at + 4, 2);
        if (hours < 0 || hours > 23 || minutes < 0 || minutes > 59) {
            return 0;
        }
        offset = (s[at] == '-' ? -1 : 1) * (hours * 60L + minutes);
    }
    else {
        return 0;
    }
    *seconds = days_from_civil(year, month, day) * 86400LL + hour * 3600LL + minute * 60LL
               + second - offset * 60LL;
    return 1;
}

/* utc_text() is the report's text of a time, `dt.isoformat().replace("+00:00", "Z")`,
 * for an exact datetime whose tzinfo is datetime.UTC itself (every time a session's
 * reader makes): "YYYY-MM-DDTHH:MM:SS[.ffffff]Z", the fraction only where the
 * microseconds are not 0, as isoformat writes them. None for anything else (another
 * zone, a naive time, a subclass): Python answers. */
static PyObject *
utc_text(PyObject *self, PyObject *value)
{
    if (!PyDateTime_CheckExact(value)
        || PyDateTime_DATE_GET_TZINFO(value) != PyDateTime_TimeZone_UTC) {
        Py_RETURN_NONE;
    }
    int year = PyDateTime_GET_YEAR(value), micro = PyDateTime_DATE_GET_MICROSECOND(value);
    int fields[6] = {year, PyDateTime_GET_MONTH(value), PyDateTime_GET_DAY(value),
                     PyDateTime_DATE_GET_HOUR(value), PyDateTime_DATE_GET_MINUTE(value),
                     PyDateTime_DATE_GET_SECOND(value)};
    if (year > 9999) {  /* (datetime's own bound: never here) */
        Py_RETURN_NONE;
    }
    Py_ssize_t length = micro ? 27 : 20;
    PyObject *text = PyUnicode_New(length, 127);
    if (text == NULL) {
        return NULL;
    }
    char *out = (char *)PyUnicode_DATA(text);
    /* year, then each field after its separator, two digits each */
    static const char separators[6] = {0, '-', '-', 'T', ':', ':'};
    out[0] = (char)('0' + year / 1000);
    out[1] = (char)('0' + year / 100 % 10);
    out[2] = (char)('0' + year / 10 % 10);
    out[3] = (char)('0' + year % 10);
    for (int i = 1, at = 4; i < 6; i++, at += 3) {
        out[at] = separators[i];
        out[at + 1] = (char)('0' + fields[i] / 10);
        out[at + 2] = (char)('0' + fields[i] % 10);
    }
    if (micro) {
        out[19] = '.';
        for (int i = 25; i >= 20; i--, micro /= 10) {
            out[i] = (char)('0' + micro % 10);
        }
    }
    out[length - 1] = 'Z';
    return text;
}

static PyObject *
utc_time(PyObject *self, PyObject *value)
{
    long long seconds;
    int micro = 0;
    if (PyUnicode_CheckExact(value)) {
        if (!PyUnicode_IS_ASCII(value)
            || !iso_seconds((const char *)PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value),
                            &seconds, &micro)) {
            Py_RETURN_NONE;
        }
    }
    else if (PyLong_CheckExact(value)) {
        int overflow;
        seconds = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (seconds == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            Py_RETURN_NONE;
        }
    }
    else {
        Py_RETURN_NONE;
    }
    if (seconds < EARLIEST_EPOCH || seconds >= LATEST_EPOCH) {
        Py_RETURN_NONE;
    }
    return utc_datetime(seconds, micro);
}

static PyObject *
v4_address(PyObject *self, PyObject *value)
{
    unsigned char v4[4];
    /* dotted_quad reads what inet_ntoa writes: one to three digits a part, no
     * leading zero, at most 255, the whole text. */
    if (!PyUnicode_CheckExact(value) || !dotted_quad(value, v4)) {
        Py_RETURN_NONE;
    }
    unsigned long number = (unsigned long)v4[0] << 24 | (unsigned long)v4[1] << 16
                           | (unsigned long)v4[2] << 8 | v4[3];
    PyTypeObject *type = (PyTypeObject *)g_v4_type;
    PyObject *address = type->tp_new(type, g_empty_args, NULL);
    if (address == NULL) {
        return NULL;
    }
    PyObject *ip = PyLong_FromUnsignedLong(number);
    if (ip == NULL || PyObject_SetAttr(address, g_ip_attr, ip) < 0) {
        Py_XDECREF(ip);
        Py_DECREF(address);
        return NULL;
    }
    Py_DECREF(ip);
    return address;
}

/* v4_texts(address): (str(address), its /24 as "a.b.c.0/24") of an IPv4Address itself,
 * from its number (fingerprint.stages.login.ip_text and network_of), else None. */
static PyObject *
v4_texts(PyObject *self, PyObject *address)
{
    if ((PyObject *)Py_TYPE(address) != g_v4_type) {
        Py_RETURN_NONE;
    }
    PyObject *ip = PyObject_GetAttr(address, g_ip_attr);
    if (ip == NULL) {
        return NULL;
    }
    unsigned long number = PyLong_Check(ip) ? PyLong_AsUnsignedLong(ip) : ULONG_MAX;
    Py_DECREF(ip);
    if (number > 0xFFFFFFFFUL) {  /* not an address's number (or an error): Python says */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const unsigned char v4[4] = {(unsigned char)(number >> 24), (unsigned char)(number >> 16),
                                 (unsigned char)(number >> 8), (unsigned char)number};
    PyObject *text = v4_str(v4, 0), *block = v4_str(v4, 1);
    PyObject *both = text != NULL && block != NULL ? PyTuple_Pack(2, text, block) : NULL;
    Py_XDECREF(text);
    Py_XDECREF(block);
    return both;
}

/* fields_dict(names, values): {name: value} of two tuples of one length, in their
 * order (Stability.to_dict: dict(zip(names, values)) without the zip), else None. */
static PyObject *
fields_dict(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "fields_dict takes 2 arguments (names, values)");
        return NULL;
    }
    PyObject *names = args[0], *values = args[1];
    if (!PyTuple_Check(names) || !PyTuple_Check(values)
        || PyTuple_GET_SIZE(names) != PyTuple_GET_SIZE(values)) {
        Py_RETURN_NONE;
    }
    /* Sized for its keys at once, as a dict display is (CPython's own presizing,
     * a private function: from 3.13 on, a plain dict that grows as it fills). */
#if PY_VERSION_HEX < 0x030D0000
    PyObject *made = _PyDict_NewPresized(PyTuple_GET_SIZE(names));
#else
    PyObject *made = PyDict_New();
#endif
    for (Py_ssize_t i = 0; made != NULL && i < PyTuple_GET_SIZE(names); i++) {
        if (PyDict_SetItem(made, PyTuple_GET_ITEM(names, i), PyTuple_GET_ITEM(values, i)) < 0) {
            Py_CLEAR(made);
        }
    }
    return made;
}

/* ---- The accounts seen on a device or an address (history._record_on) ----
 *
 * record_on(table, pop_key, key, account, ts, low, cap) is _record_on for the table's
 * own values: a (ts, account) pair, or a dict of account -> ts, with text accounts
 * and int or float times. It looks before it changes anything, and returns None (the
 * Python function then answers) for any other kind of value, key or time. */

static int
is_time(PyObject *value)
{
    return PyFloat_CheckExact(value) || PyLong_CheckExact(value);
}

/* The pair's or the dict's values are of the kinds this function takes. */
static int
takes_seen(PyObject *seen)
{
    if (PyTuple_CheckExact(seen)) {
        return PyTuple_GET_SIZE(seen) == 2 && is_time(PyTuple_GET_ITEM(seen, 0))
               && PyUnicode_CheckExact(PyTuple_GET_ITEM(seen, 1));
    }
    if (!PyDict_CheckExact(seen)) {
        return 0;
    }
    Py_ssize_t pos = 0;
    PyObject *who, *at;
    while (PyDict_Next(seen, &pos, &who, &at)) {
        if (!PyUnicode_CheckExact(who) || !is_time(at)) {
            return 0;
        }
    }
    return 1;
}

/* (at, who) for each of the dict's accounts with at >= low, in the dict's order. */
static PyObject *
earlier_of(PyObject *seen, PyObject *low)
{
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        return NULL;
    }
    Py_ssize_t pos = 0;
    PyObject *who, *at;
    while (PyDict_Next(seen, &pos, &who, &at)) {
        int recent = PyObject_RichCompareBool(at, low, Py_GE);
        PyObject *pair = recent > 0 ? PyTuple_Pack(2, at, who) : NULL;
        if (recent < 0 || (recent > 0 && (pair == NULL || PyList_Append(found, pair) < 0))) {
            Py_XDECREF(pair);
            Py_DECREF(found);
            return NULL;
        }
        Py_XDECREF(pair);
    }
    PyObject *earlier = PyList_AsTuple(found);
    Py_DECREF(found);
    return earlier;
}

/* The account's newest ts into the dict (re-inserted last: dict order is recency
 * order), then the least recent accounts past the cap dropped. 0, or -1 on error. */
static int
note_account(PyObject *seen, PyObject *account, PyObject *ts, Py_ssize_t cap)
{
    PyObject *at = PyDict_GetItemWithError(seen, account);
    if (at == NULL && PyErr_Occurred()) {
        return -1;
    }
    /* seen.get(account, -inf) < ts */
    int newer = PyObject_RichCompareBool(at != NULL ? at : g_neg_inf, ts, Py_LT);
    if (newer < 0 || (newer && at != NULL && PyDict_DelItem(seen, account) < 0)
        || (newer && PyDict_SetItem(seen, account, ts) < 0)) {
        return -1;
    }
    Py_ssize_t excess = PyDict_GET_SIZE(seen) - cap;
    if (excess <= 0) {
        return 0;
    }
    PyObject *stale = PyList_New(0);
    Py_ssize_t pos = 0;
    PyObject *who, *value;
    while (stale != NULL && PyList_GET_SIZE(stale) < excess && PyDict_Next(seen, &pos, &who, &value)) {
        if (PyList_Append(stale, who) < 0) {
            Py_CLEAR(stale);
        }
    }
    if (stale == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(stale); i++) {
        if (PyDict_DelItem(seen, PyList_GET_ITEM(stale, i)) < 0) {
            Py_DECREF(stale);
            return -1;
        }
    }
    Py_DECREF(stale);
    return 0;
}

static PyObject *
record_on(PyObject *self, PyObject *args)
{
    PyObject *table, *pop_key, *key, *account, *ts, *low, *cap_value;
    if (!PyArg_ParseTuple(args, "OOOOOOO:record_on", &table, &pop_key, &key, &account, &ts, &low,
                          &cap_value)) {
        return NULL;
    }
    if (!PyDict_CheckExact(table) || !PyUnicode_CheckExact(pop_key) || !PyUnicode_CheckExact(key)
        || !PyUnicode_CheckExact(account) || !is_time(ts) || !is_time(low)
        || !PyLong_CheckExact(cap_value)) {
        Py_RETURN_NONE;
    }
    Py_ssize_t cap = PyLong_AsSsize_t(cap_value);
    if (cap < 0) {  /* no store's (a cap is at least 1); beyond a Py_ssize_t */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    PyObject *seen = PyDict_GetItemWithError(table, pop_key);
    if (seen == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        PyObject *pair = PyTuple_Pack(2, ts, account);
        if (pair == NULL || PyDict_SetItem(table, key, pair) < 0) {
            Py_XDECREF(pair);
            return NULL;
        }
        Py_DECREF(pair);
        return PyTuple_New(0);
    }
    if (!takes_seen(seen)) {
        Py_RETURN_NONE;
    }
    Py_INCREF(seen);
    if (PyDict_DelItem(table, pop_key) < 0) {  /* popped: re-inserted last, below */
        Py_DECREF(seen);
        return NULL;
    }
    PyObject *earlier = NULL, *kept = NULL;
    if (PyTuple_CheckExact(seen)) {
        PyObject *at = PyTuple_GET_ITEM(seen, 0), *who = PyTuple_GET_ITEM(seen, 1);
        int recent = PyObject_RichCompareBool(at, low, Py_GE);
        int same = recent < 0 ? -1 : PyObject_RichCompareBool(who, account, Py_EQ);
        if (same < 0) {
            goto done;
        }
        earlier = recent ? PyTuple_Pack(1, seen) : PyTuple_New(0);
        if (earlier == NULL) {
            goto done;
        }
        if (same) {  /* (max(at, ts), account) */
            int later = PyObject_RichCompareBool(ts, at, Py_GT);
            kept = later < 0 ? NULL : PyTuple_Pack(2, later ? ts : at, account);
            if (kept == NULL) {
                Py_CLEAR(earlier);
            }
            goto done;
        }
        kept = PyDict_New();
        if (kept == NULL || PyDict_SetItem(kept, who, at) < 0) {
            Py_CLEAR(earlier);
            goto done;
        }
    }
    else {
        earlier = earlier_of(seen, low);
        if (earlier == NULL) {
            goto done;
        }
        kept = seen;
        Py_INCREF(kept);
    }
    if (note_account(kept, account, ts, cap) < 0) {
        Py_CLEAR(earlier);
    }
done:
    Py_DECREF(seen);
    if (earlier != NULL && PyDict_SetItem(table, key, kept) < 0) {
        Py_CLEAR(earlier);
    }
    Py_XDECREF(kept);
    return earlier;
}

static PyMethodDef methods[] = {
    {"bind_event", bind_event, METH_VARARGS,
     "bind_event(LoginEvent): the record history's logins are."},
    {"bind_stability", bind_stability, METH_VARARGS,
     "bind_stability(namespace, Stability): the stability module's globals and record."},
    {"unpack_window", unpack_window, METH_VARARGS,
     "unpack_window(account_id, records, symbols, start, stop): a packed window's logins\n"
     "start..stop as a tuple of LoginEvents (fingerprint.history._unpack)."},
    {"plain_json", plain_json, METH_O,
     "plain_json(record): whether the record is a dict made only of what a JSON decoder\n"
     "makes (dicts, lists, text without a lone surrogate, 64-bit integers, floats,\n"
     "booleans, None), which the session decoder need not look at again."},
    {"pack_login", pack_login, METH_VARARGS,
     "pack_login(event, symbols, places, share_place): one login's packed record\n"
     "(fingerprint.history._pack), or None for the Python function."},
    {"append_login", append_login, METH_VARARGS,
     "append_login(Window, window, event, max_events, account_seconds, places, share_place):\n"
     "(the window with the login appended, the logins before it, the device id's copy)\n"
     "when it is the newest of a window that keeps every login\n"
     "(MemoryHistoryStore._record_in_order), else None for the Python method."},
    {"entropy_sum", entropy_sum_of, METH_O,
     "entropy_sum(counts): the entropy of a tuple of positive ints before _entropy_of\n"
     "rounds it, as the walk computes a pattern its memo misses (for the tests)."},
    {"packed_stability", packed_stability, METH_VARARGS,
     "packed_stability(records, symbols, start, position, current, windows_seconds, local_tz,\n"
     "unusual_hour_share): stability_windows over a packed window's logins start..position\n"
     "(the current login's record at position), or None for the object walk."},
    {"stability_windows", stability_windows, METH_VARARGS,
     "stability_windows(history, current, windows_seconds, local_tz, unusual_hour_share):\n"
     "python_stability_windows for the common case, or None for the Python function."},
    {"utc_text", utc_text, METH_O,
     "utc_text(dt): dt.isoformat() with 'Z' for '+00:00', for an exact datetime in\n"
     "datetime.UTC; None for any other value."},
    {"utc_time", utc_time, METH_O,
     "utc_time(value): parse_timestamp of ISO 8601 text with its offset written\n"
     "(YYYY-MM-DDTHH:MM:SS[.fff|.ffffff] then Z or +HH:MM) or of an int of epoch seconds,\n"
     "from 1990 to 2100, as an aware UTC datetime; else None for the Python function."},
    {"v4_address", v4_address, METH_O,
     "v4_address(text): parse_ip of an IPv4 address written as inet_ntoa writes one,\n"
     "as IPv4Address(packed) makes it; else None for the Python function."},
    {"v4_texts", v4_texts, METH_O,
     "v4_texts(address): (the address's text, its /24's text) of an IPv4Address, else None."},
    {"fields_dict", (PyCFunction)(void (*)(void))fields_dict, METH_FASTCALL,
     "fields_dict(names, values): {name: value} of two tuples of one length, else None."},
    {"record_on", record_on, METH_VARARGS,
     "record_on(table, pop_key, key, account, ts, low, cap): history._record_on for the\n"
     "table's own values (pairs and dicts of text accounts and times), else None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "fingerprint._native",
    "History's window decoding and the stability walk in C (see fingerprint.native).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    static const long night[6] = {23, 0, 1, 2, 3, 4};
    PyObject *builtins = PyImport_ImportModule("builtins");
    if (builtins == NULL) {
        return NULL;
    }
    g_round = PyObject_GetAttrString(builtins, "round");
    g_sum = PyObject_GetAttrString(builtins, "sum");
    Py_DECREF(builtins);
    if (g_round == NULL || g_sum == NULL) {
        return NULL;
    }
    g_three = PyLong_FromLong(3);
    g_four = PyLong_FromLong(4);
    g_put = PyUnicode_InternFromString("put");
    g_zero_float = PyFloat_FromDouble(0.0);
    g_empty_text = PyUnicode_FromString("");
    g_key_shares = PyUnicode_InternFromString("_SHARES");
    g_key_window_days = PyUnicode_InternFromString("_WINDOW_DAYS");
    g_key_entropies = PyUnicode_InternFromString("_ENTROPIES");
    g_key_local_hour = PyUnicode_InternFromString("_local_hour");
    for (int i = 0; i < 6; i++) {
        g_night[i] = PyLong_FromLong(night[i]);
        if (g_night[i] == NULL) {
            return NULL;
        }
    }
    if (!g_three || !g_four || !g_put || !g_zero_float || !g_empty_text || !g_key_shares || !g_key_window_days
        || !g_key_entropies || !g_key_local_hour) {
        return NULL;
    }
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) {
        return NULL;
    }
    PyObject *ipaddress = PyImport_ImportModule("ipaddress");
    if (ipaddress == NULL) {
        return NULL;
    }
    g_v4_type = PyObject_GetAttrString(ipaddress, "IPv4Address");
    Py_DECREF(ipaddress);
    g_ip_attr = PyUnicode_InternFromString("_ip");
    g_empty_args = PyTuple_New(0);
    g_neg_inf = PyFloat_FromDouble(-Py_HUGE_VAL);
    if (g_v4_type == NULL || !PyType_Check(g_v4_type) || g_ip_attr == NULL || g_empty_args == NULL
        || g_neg_inf == NULL) {
        return NULL;
    }
    PyObject *made = PyModule_Create(&module);
    if (made != NULL
        && PyModule_AddStringConstant(made, "SOURCE_DIGEST", FINGERPRINT_NATIVE_SOURCE) < 0) {
        Py_CLEAR(made);
    }
    return made;
}
