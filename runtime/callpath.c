/* gradc._callpath: the fast call path of compiled gradc functions.
 *
 * A Plan describes one compiled signature: the kernel's address, each input's dtype,
 * rank and sizes (fixed numbers or size symbols), the outputs, the workspace, and how
 * outputs nest in the result.  Plan(*args) checks every argument against it before the
 * kernel touches memory; anything it does not accept exactly (another dtype, a
 * non-contiguous or misaligned array, sizes that disagree, a list, ...) returns the
 * MISS sentinel and the Python slow path takes over (it converts, retraces, or raises
 * a clear error).  So native code only ever sees memory whose extent was checked.
 *
 * A plan may be armed (set_hot) to call back once its kernel has run for a given time in
 * all: the JIT then compiles the kernel again with its vector math inlined, and
 * set_kernel swaps the faster code in (gradc/backends/kernel.py, Kernel.upgrade).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gradc.h"
#include "parallel.c"
#include "skinny.c"
#include "gemm_small.c"
#include "poolgemm.c"
#include "lapack.c"
#include "sortrank.c"

#define MAXDIM 8
#define MAXARGS 64
#define MAXSYM 64

typedef int32_t (*kernel_fn)(void **args, const int64_t *sizes, void *ws);

typedef struct {
    int typenum;
    int itemsize;
    int ndim;
    int64_t dims[MAXDIM]; /* >= 0: fixed size; < 0: size symbol -(d+1) */
} Spec;

typedef struct Plan {
    PyObject_HEAD
    kernel_fn fn;
    int n_in, n_out, n_ws, n_sym, n_const, n_nonempty;
    Spec in[MAXARGS], out[MAXARGS], nonempty[MAXARGS];
    Spec *ws;            /* the workspace's buffers, n_ws of them (as many as the kernel has: */
    int *ws_region;      /* an unrolled loop makes hundreds); each one's region (buffers in a */
                         /* region share memory) */
    int64_t min_size[MAXSYM];
    PyObject *structure; /* int k (output k, or argument k - n_out copied) or nested tuples of them */
    PyObject *consts;    /* tuple of ndarrays kept alive */
    void *const_ptr[MAXARGS];
    char *ws_buf;
    size_t ws_cap;
    int ws_busy;
    PyObject *on_hot;    /* set_hot's callback, until it is called (then NULL) */
    double hot_after;    /* seconds of kernel time before on_hot is called */
    double busy;         /* seconds of kernel time so far (counted while on_hot is set) */
    /* set_split: the batch split (gradc/backends/batch_split.py) */
    struct Plan *split;  /* the plan of the kernel a part of the batch runs, or NULL */
    int split_sym;       /* the batch's size symbol */
    int split_parts;     /* parts (threads) */
    int64_t split_min_rows;
    int64_t split_chunk_bytes;  /* a part runs its rows in chunks of about this many bytes */
    int64_t split_chunk_min;    /* of intermediates and row data, at least this many rows */
    int n_count;         /* the part kernel's extra scalar inputs: counts over the whole batch, */
    int split_first;     /* then (1) a bool true in the first part only */
    Spec count[MAXARGS]; /* each count's counted dims; typenum: the count's dtype */
    signed char in_rows[MAXARGS];   /* input i has the batch as its leading axis */
    signed char out_kind[MAXARGS];  /* output o: 0 its rows, 1 a sum over the rows, 2 batch-free */
    int sub_sym[MAXSYM]; /* the part kernel's size symbol k is this plan's sub_sym[k] */
    char *split_buf;     /* the parts' workspaces and results, kept from call to call */
    size_t split_cap;
    int split_busy;      /* a call is using split_buf (another thread's call allocates its own) */
    int ints_are_floats; /* a float array is among the inputs: a Python int given for a 0-d */
                         /* float takes that float type (gradc.api.prepare); else its own */
} Plan;

static PyObject *MISS;
static PyTypeObject PlanType;

static int parse_spec(PyObject *o, Spec *s, int need_type) {
    /* (typenum, itemsize, (dims...)) */
    int typenum, itemsize;
    PyObject *dims;
    if (!PyArg_ParseTuple(o, "iiO!", &typenum, &itemsize, &PyTuple_Type, &dims)) return -1;
    Py_ssize_t nd = PyTuple_GET_SIZE(dims);
    if (nd > MAXDIM) { PyErr_SetString(PyExc_ValueError, "too many dimensions"); return -1; }
    s->typenum = typenum; s->itemsize = itemsize; s->ndim = (int)nd;
    for (Py_ssize_t d = 0; d < nd; d++) {
        long long v = PyLong_AsLongLong(PyTuple_GET_ITEM(dims, d));
        if (v == -1 && PyErr_Occurred()) return -1;
        s->dims[d] = v;
    }
    (void)need_type;
    return 0;
}

static int parse_specs(PyObject *seq, Spec *out, int *n) {
    if (!PyTuple_Check(seq)) { PyErr_SetString(PyExc_TypeError, "specs must be a tuple"); return -1; }
    Py_ssize_t k = PyTuple_GET_SIZE(seq);
    if (k > MAXARGS) { PyErr_SetString(PyExc_ValueError, "too many arguments for the fast path"); return -1; }
    for (Py_ssize_t i = 0; i < k; i++)
        if (parse_spec(PyTuple_GET_ITEM(seq, i), &out[i], 1) < 0) return -1;
    *n = (int)k;
    return 0;
}

/* Every leaf of the result's structure names an output buffer or an argument. */
static int check_structure(PyObject *structure, long n_leaves) {
    if (PyLong_Check(structure)) {
        long k = PyLong_AsLong(structure);
        if (k >= 0 && k < n_leaves) return 0;
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a result names no output or argument");
        return -1;
    }
    if (!PyTuple_Check(structure)) {
        PyErr_SetString(PyExc_TypeError, "the result's structure is ints in tuples"); return -1;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(structure); i++)
        if (check_structure(PyTuple_GET_ITEM(structure, i), n_leaves) < 0) return -1;
    return 0;
}

static int Plan_init(Plan *self, PyObject *args, PyObject *kw) {
    unsigned long long addr;
    PyObject *ins, *outs, *wss, *regions, *mins, *nonempty, *structure, *consts;
    int n_sym;
    if (!PyArg_ParseTuple(args, "KOOOO!iOOOO!", &addr, &ins, &outs, &wss, &PyTuple_Type, &regions, &n_sym,
                          &mins, &nonempty, &structure, &PyTuple_Type, &consts))
        return -1;
    if (n_sym < 0 || n_sym > MAXSYM) { PyErr_SetString(PyExc_ValueError, "too many size symbols"); return -1; }
    self->fn = (kernel_fn)(uintptr_t)addr;
    if (parse_specs(ins, self->in, &self->n_in) < 0) return -1;
    if (parse_specs(outs, self->out, &self->n_out) < 0) return -1;
    self->ints_are_floats = 0;
    for (int i = 0; i < self->n_in; i++)
        if (self->in[i].ndim > 0 && (self->in[i].typenum == NPY_DOUBLE || self->in[i].typenum == NPY_FLOAT))
            self->ints_are_floats = 1;
    if (!PyTuple_Check(wss)) { PyErr_SetString(PyExc_TypeError, "specs must be a tuple"); return -1; }
    Py_ssize_t n_ws = PyTuple_GET_SIZE(wss);
    if (n_ws > INT32_MAX / 2) { PyErr_SetString(PyExc_ValueError, "too many workspace buffers"); return -1; }
    Spec *ws = PyMem_Calloc((size_t)(n_ws ? n_ws : 1), sizeof(Spec));
    int *ws_region = PyMem_Calloc((size_t)(n_ws ? n_ws : 1), sizeof(int));
    if (!ws || !ws_region) { PyMem_Free(ws); PyMem_Free(ws_region); PyErr_NoMemory(); return -1; }
    PyMem_Free(self->ws);
    PyMem_Free(self->ws_region);
    self->ws = ws; self->ws_region = ws_region; self->n_ws = 0;
    for (Py_ssize_t w = 0; w < n_ws; w++)
        if (parse_spec(PyTuple_GET_ITEM(wss, w), &ws[w], 1) < 0) return -1;
    self->n_ws = (int)n_ws;
    if (PyTuple_GET_SIZE(regions) != self->n_ws) {
        PyErr_SetString(PyExc_ValueError, "one region index per workspace buffer"); return -1;
    }
    for (int w = 0; w < self->n_ws; w++) {
        long r = PyLong_AsLong(PyTuple_GET_ITEM(regions, w));
        if (r < 0 || (w && r != self->ws_region[w - 1] && r != self->ws_region[w - 1] + 1) ||
            (!w && r != 0)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "workspace regions must be 0, 1, 2, ... in order");
            return -1;
        }
        self->ws_region[w] = (int)r;
    }
    if (parse_specs(nonempty, self->nonempty, &self->n_nonempty) < 0) return -1;
    self->n_sym = n_sym;
    if (!PyTuple_Check(mins) || PyTuple_GET_SIZE(mins) != n_sym) {
        PyErr_SetString(PyExc_ValueError, "min sizes must be a tuple, one per symbol"); return -1;
    }
    for (int k = 0; k < n_sym; k++) self->min_size[k] = PyLong_AsLongLong(PyTuple_GET_ITEM(mins, k));
    if (PyErr_Occurred()) return -1;
    Py_ssize_t nc = PyTuple_GET_SIZE(consts);
    if (self->n_in + self->n_out + nc > MAXARGS) {
        PyErr_SetString(PyExc_ValueError, "too many buffers for the fast path"); return -1;
    }
    for (Py_ssize_t i = 0; i < nc; i++) {
        PyObject *c = PyTuple_GET_ITEM(consts, i);
        if (!PyArray_Check(c) || !PyArray_IS_C_CONTIGUOUS((PyArrayObject *)c)) {
            PyErr_SetString(PyExc_TypeError, "constants must be C-contiguous arrays"); return -1;
        }
        self->const_ptr[i] = PyArray_DATA((PyArrayObject *)c);
    }
    self->n_const = (int)nc;
    Py_XSETREF(self->consts, Py_NewRef(consts));
    if (check_structure(structure, (long)(self->n_out + self->n_in)) < 0) return -1;
    Py_XSETREF(self->structure, Py_NewRef(structure));
    return 0;
}

static void Plan_dealloc(Plan *self) {
    Py_XDECREF((PyObject *)self->split);
    free(self->split_buf);
    Py_XDECREF(self->on_hot);
    Py_XDECREF(self->consts);
    Py_XDECREF(self->structure);
    free(self->ws_buf);
    PyMem_Free(self->ws);
    PyMem_Free(self->ws_region);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int64_t dim_value(const Spec *s, int d, const int64_t *sizes) {
    int64_t v = s->dims[d];
    return v >= 0 ? v : sizes[-v - 1];
}

/* The result's structure: a tuple of tuples whose leaves are ints, k < n_out for output
 * buffer k (an output returned twice is the same array twice, as on the Python path) and
 * n_out + i for a copy of argument i (a gradient that is an argument itself). */
typedef struct { PyObject **outs; int n_out; PyObject *args; const double *scalars; const Spec *in; } Results;

static PyObject *copy_argument(const Results *r, int i) {
    PyObject *a = PyTuple_GET_ITEM(r->args, i);
    if (PyArray_Check(a)) return PyArray_NewCopy((PyArrayObject *)a, NPY_CORDER);
    PyObject *z = PyArray_SimpleNew(0, NULL, r->in[i].typenum);   /* a Python float given for a 0-d float */
    if (z) memcpy(PyArray_DATA((PyArrayObject *)z), &r->scalars[i], (size_t)r->in[i].itemsize);
    return z;
}

static PyObject *build(PyObject *structure, const Results *r) {
    if (PyLong_Check(structure)) {
        long k = PyLong_AsLong(structure);
        PyObject *o = k < r->n_out ? Py_NewRef(r->outs[k]) : copy_argument(r, (int)(k - r->n_out));
        return o ? PyArray_Return((PyArrayObject *)o) : NULL; /* steals; 0-d becomes a numpy scalar */
    }
    Py_ssize_t n = PyTuple_GET_SIZE(structure);
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = build(PyTuple_GET_ITEM(structure, i), r);
        if (!item) { Py_DECREF(t); return NULL; }
        PyTuple_SET_ITEM(t, i, item);
    }
    return t;
}

/* The call's result from its filled outputs (their references are dropped), or NULL
 * with the error of a non-zero kernel status (the same errors as kernel.raise_status). */
static PyObject *finish_call(Plan *self, PyObject **outs, PyObject *args, const double *scalars, int32_t rc) {
    if (rc != 0) {
        for (int o = 0; o < self->n_out; o++) Py_DECREF(outs[o]);
        if (rc < 0) return NULL;   /* run_split: the error is set */
        if (rc & GRADC_NEGATIVE_POWER) {
            PyErr_SetString(PyExc_ValueError, "Integers to negative integer powers are not allowed.");
            return NULL;
        }
        /* a linear algebra failure or an index out of bounds: the Python path runs the
         * call again and raises the error naming the user's ops and lines
         * (kernel.raise_status) */
        return Py_NewRef(MISS);
    }
    Results r = {outs, self->n_out, args, scalars, self->in};
    PyObject *result = build(self->structure, &r);
    for (int o = 0; o < self->n_out; o++) Py_DECREF(outs[o]);
    return result;
}

/* Call `plan`'s on_hot once, after a call that returned `result`: the callback may call
 * set_kernel or set_split (and may raise: then the call fails with its error, the
 * result dropped; Kernel.upgrade never raises). */
static PyObject *call_on_hot(Plan *plan, PyObject *result) {
    PyObject *cb = plan->on_hot;
    plan->on_hot = NULL;
    PyObject *r2 = PyObject_CallOneArg(cb, (PyObject *)plan);
    Py_DECREF(cb);
    if (!r2) { Py_DECREF(result); return NULL; }
    Py_DECREF(r2);
    return result;
}

/* Bytes of workspace the kernel of `p` needs at these sizes (schedule.workspace_layout):
 * each region holds its largest buffer, rounded up to 64 bytes. */
static size_t ws_need(const Plan *p, const int64_t *sizes) {
    size_t need = 0, region = 0;
    for (int w = 0; w < p->n_ws; w++) {
        const Spec *s = &p->ws[w];
        size_t count = 1;
        for (int d = 0; d < s->ndim; d++) count *= (size_t)dim_value(s, d, sizes);
        size_t bytes = count * (size_t)s->itemsize;
        if (bytes > region) region = bytes;
        if (w == p->n_ws - 1 || p->ws_region[w + 1] != p->ws_region[w]) {
            need += (region + 63) & ~(size_t)63;
            region = 0;
        }
    }
    return need;
}

/* A 64-byte aligned buffer of `need` bytes: the plan's own (*buf, *cap, grown when too
 * small) when no call is using it (`busy`: a call re-entered from a hot callback), else
 * a new one the caller frees (*owned).  NULL when out of memory. */
static char *reuse_buffer(char **buf, size_t *cap, int busy, size_t need, char **owned) {
    size_t bytes = (need + 63) & ~(size_t)63;
    if (busy) return *owned = aligned_alloc(64, bytes);
    if (*cap < need) {
        free(*buf);
        *buf = aligned_alloc(64, bytes);
        *cap = *buf ? need : 0;
    }
    return *buf;
}

/* Bytes from one row of `s` (its leading axis) to the next. */
static size_t row_bytes(const Spec *s, const int64_t *sizes) {
    size_t b = (size_t)s->itemsize;
    for (int d = 1; d < s->ndim; d++) b *= (size_t)dim_value(s, d, sizes);
    return b;
}

#define MAXPARTS 64

/* One call split over the batch: part t runs the part kernel on its rows. */
typedef struct {
    const Plan *main;
    void **ptrs;              /* the whole call's inputs and outputs */
    const int64_t *sizes;     /* the whole call's sizes */
    char *ws[MAXPARTS];
    char *tmp[MAXPARTS];      /* parts after the first: their sums and batch-free outputs */
    char *scratch[MAXPARTS];  /* a part's chunks after its first: their sums and batch-free outputs */
    size_t out_off[MAXARGS];  /* each such output's offset in tmp */
    size_t out_elems[MAXARGS];  /* and its number of elements */
    double counts[MAXARGS];   /* the counts over the whole batch (a float32 count in the first 4 bytes) */
    int32_t rc[MAXPARTS];
    int64_t chunk;            /* rows a part runs at a time (0: all of them) */
} SplitRun;

/* Add the n elements at `add` into `acc` (float32 or float64). */
static void add_into(void *acc, const void *add, size_t n, int typenum) {
    if (typenum == NPY_FLOAT) {
        float *a = (float *)acc;
        const float *b = (const float *)add;
        for (size_t e = 0; e < n; e++) a[e] += b[e];
    } else {
        double *a = (double *)acc;
        const double *b = (const double *)add;
        for (size_t e = 0; e < n; e++) a[e] += b[e];
    }
}

/* Part `part` of the batch: rows [start, end), r->chunk rows at a time (the part
 * kernel's intermediates for a chunk stay in cache, where those of half a large batch
 * went to memory and back).  A chunk after the part's first writes its sums and
 * batch-free outputs to scratch and adds the sums to the part's own, chunk by chunk: the
 * same order on every call. */
static void split_part(void *vctx, int64_t start, int64_t end, int32_t part) {
    SplitRun *r = (SplitRun *)vctx;
    const Plan *p = r->main, *sub = p->split;
    void *ptrs[3 * MAXARGS];
    int64_t sizes[MAXSYM];
    int64_t step = r->chunk > 0 && r->chunk < end - start ? r->chunk : end - start;
    int32_t rc = 0;
    for (int64_t c0 = start; c0 < end && !rc; c0 += step) {
        int64_t c1 = end - c0 < step ? end : c0 + step;
        int first_chunk = c0 == start;
        for (int k = 0; k < sub->n_sym; k++)
            sizes[k] = p->sub_sym[k] == p->split_sym ? c1 - c0 : r->sizes[p->sub_sym[k]];
        int k = 0;
        for (int i = 0; i < p->n_in; i++)
            ptrs[k++] = (char *)r->ptrs[i] + (p->in_rows[i] ? (size_t)c0 * row_bytes(&p->in[i], r->sizes) : 0);
        for (int j = 0; j < p->n_count; j++) ptrs[k++] = &r->counts[j];
        static const unsigned char FIRST[2] = {0, 1};
        if (p->split_first) ptrs[k++] = (void *)&FIRST[part == 0 && first_chunk];
        for (int o = 0; o < p->n_out; o++) {
            char *out = (char *)r->ptrs[p->n_in + o];
            if (p->out_kind[o] == 0) out += (size_t)c0 * row_bytes(&p->out[o], r->sizes);
            else if (!first_chunk) out = r->scratch[part] + r->out_off[o];
            else if (part > 0) out = r->tmp[part] + r->out_off[o];
            ptrs[k++] = out;
        }
        for (int c = 0; c < sub->n_const; c++) ptrs[k++] = sub->const_ptr[c];
        rc |= sub->fn(ptrs, sizes, r->ws[part]);
        if (first_chunk || rc) continue;
        for (int o = 0; o < p->n_out; o++) {
            if (p->out_kind[o] != 1) continue;
            char *own = part > 0 ? r->tmp[part] + r->out_off[o] : (char *)r->ptrs[p->n_in + o];
            add_into(own, r->scratch[part] + r->out_off[o], r->out_elems[o], p->out[o].typenum);
        }
    }
    r->rc[part] = rc;
}

/* Rows a part runs at a time so that a chunk's workspace and its rows of the inputs and
 * outputs take about split_chunk_bytes (at least split_chunk_min rows); 0: all at once.
 * `sub_sizes`: the part kernel's sizes (its batch size is left at a probe's: the caller
 * sets it again). */
static int64_t split_chunk_rows(const Plan *self, const int64_t *sizes, int64_t *sub_sizes) {
    if (self->split_chunk_bytes <= 0) return 0;
    const Plan *sub = self->split;
    enum { PROBE = 1024 };    /* the workspace grows with the rows: its bytes a row, measured here */
    for (int k = 0; k < sub->n_sym; k++)
        if (self->sub_sym[k] == self->split_sym) sub_sizes[k] = PROBE;
    double per_row = (double)ws_need(sub, sub_sizes) / PROBE;
    for (int i = 0; i < self->n_in; i++)
        if (self->in_rows[i]) per_row += (double)row_bytes(&self->in[i], sizes);
    for (int o = 0; o < self->n_out; o++)
        if (self->out_kind[o] == 0) per_row += (double)row_bytes(&self->out[o], sizes);
    int64_t rows = per_row > 0 ? (int64_t)((double)self->split_chunk_bytes / per_row) : 0;
    return rows > self->split_chunk_min ? rows : self->split_chunk_min;
}

/* Run the call as `parts` parts of the batch on gradc's pool (set_split), then add the
 * parts' sums into the first part's, in part order: the same bits on every call.
 * Returns the kernels' status or'ed, or -1 with MemoryError set. */
static int32_t run_split(Plan *self, void **ptrs, const int64_t *sizes) {
    const Plan *sub = self->split;
    int parts = self->split_parts;
    SplitRun r;
    memset(&r, 0, sizeof r);
    r.main = self; r.ptrs = ptrs; r.sizes = sizes;
    for (int j = 0; j < self->n_count; j++) {
        double v = 1.0;
        for (int d = 0; d < self->count[j].ndim; d++) v *= (double)dim_value(&self->count[j], d, sizes);
        if (self->count[j].typenum == NPY_FLOAT) { float f = (float)v; memcpy(&r.counts[j], &f, sizeof f); }
        else r.counts[j] = v;
    }
    size_t tmp_bytes = 0;
    for (int o = 0; o < self->n_out; o++) {
        if (self->out_kind[o] == 0) continue;
        size_t n = 1;
        for (int d = 0; d < self->out[o].ndim; d++) n *= (size_t)dim_value(&self->out[o], d, sizes);
        r.out_elems[o] = n;
        r.out_off[o] = tmp_bytes;
        tmp_bytes += (n * (size_t)self->out[o].itemsize + 63) & ~(size_t)63;
    }
    int64_t rows = sizes[self->split_sym], most = rows / parts + 1;   /* a part's rows, at most */
    int64_t sub_sizes[MAXSYM] = {0};
    for (int k = 0; k < sub->n_sym; k++)
        sub_sizes[k] = self->sub_sym[k] == self->split_sym ? most : sizes[self->sub_sym[k]];
    r.chunk = split_chunk_rows(self, sizes, sub_sizes);
    /* some part runs more than one chunk (a part has rows * (t+1) / parts - rows * t / parts) */
    int chunked = r.chunk > 0 && r.chunk < (rows + parts - 1) / parts;
    if (chunked) most = r.chunk;
    for (int k = 0; k < sub->n_sym; k++)      /* (split_chunk_rows probed other sizes) */
        if (self->sub_sym[k] == self->split_sym) sub_sizes[k] = most;
    size_t ws = (ws_need(sub, sub_sizes) + 63) & ~(size_t)63;
    /* one buffer: each part's workspace, then each later part's results (kept in the
     * plan: a workspace of more than 128 KB would be mmap'ed and faulted in anew by
     * every call) */
    size_t need = (size_t)parts * ws + (size_t)(parts - 1 + (chunked ? parts : 0)) * tmp_bytes;
    char *owned = NULL;
    char *buf = need ? reuse_buffer(&self->split_buf, &self->split_cap, self->split_busy, need, &owned) : NULL;
    int ok = !need || buf;
    for (int t = 0; t < parts && ok; t++) {
        r.ws[t] = ws ? buf + (size_t)t * ws : NULL;
        if (t > 0) r.tmp[t] = buf + (size_t)parts * ws + (size_t)(t - 1) * tmp_bytes;
        if (chunked) r.scratch[t] = buf + (size_t)parts * ws + (size_t)(parts - 1 + t) * tmp_bytes;
    }
    int was_busy = self->split_busy;
    if (!owned) self->split_busy = 1;
    int32_t rc = 0;
    if (ok) {
        gradc_parallel_for(split_part, &r, rows, parts, parts);
        for (int t = 0; t < parts; t++) rc |= r.rc[t];
        for (int o = 0; o < self->n_out && !rc; o++) {
            if (self->out_kind[o] != 1) continue;
            for (int t = 1; t < parts; t++)
                add_into(ptrs[self->n_in + o], r.tmp[t] + r.out_off[o], r.out_elems[o], self->out[o].typenum);
        }
    }
    if (!owned) self->split_busy = was_busy;
    free(owned);
    if (!ok) { PyErr_NoMemory(); return -1; }
    return rc;
}

static PyObject *Plan_call(Plan *self, PyObject *args, PyObject *kw) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    if (n != self->n_in || (kw && PyDict_GET_SIZE(kw))) return Py_NewRef(MISS);
    void *ptrs[MAXARGS];
    int64_t sizes[MAXSYM];
    double scalars[MAXARGS];
    for (int k = 0; k < self->n_sym; k++) sizes[k] = -1;
    for (int i = 0; i < self->n_in; i++) {
        PyObject *a = PyTuple_GET_ITEM(args, i);
        const Spec *s = &self->in[i];
        if (PyArray_Check(a)) {
            PyArrayObject *arr = (PyArrayObject *)a;
            if (PyArray_NDIM(arr) != s->ndim || !PyArray_EquivTypenums(PyArray_TYPE(arr), s->typenum) ||
                !PyArray_IS_C_CONTIGUOUS(arr) || !PyArray_ISALIGNED(arr) || !PyArray_ISNOTSWAPPED(arr))
                return Py_NewRef(MISS);
            for (int d = 0; d < s->ndim; d++) {
                int64_t v = (int64_t)PyArray_DIM(arr, d), want = s->dims[d];
                if (want >= 0) {
                    if (v != want) return Py_NewRef(MISS);
                } else {
                    int64_t *slot = &sizes[-want - 1];
                    if (*slot < 0) *slot = v;
                    else if (*slot != v) return Py_NewRef(MISS);
                }
            }
            ptrs[i] = PyArray_DATA(arr);
        } else if (s->ndim == 0 && (PyFloat_Check(a) || (PyLong_Check(a) && !PyBool_Check(a) && self->ints_are_floats)) &&
                   (s->typenum == NPY_DOUBLE || s->typenum == NPY_FLOAT)) {
            double v = PyFloat_AsDouble(a);
            if (v == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return Py_NewRef(MISS); }
            if (s->typenum == NPY_FLOAT) { float f = (float)v; memcpy(&scalars[i], &f, sizeof f); }
            else scalars[i] = v;
            ptrs[i] = &scalars[i];
        } else {
            return Py_NewRef(MISS);
        }
    }
    for (int k = 0; k < self->n_sym; k++)
        if (sizes[k] < 0 || sizes[k] < self->min_size[k]) return Py_NewRef(MISS);
    for (int q = 0; q < self->n_nonempty; q++) {
        const Spec *s = &self->nonempty[q];
        for (int d = 0; d < s->ndim; d++)
            if (dim_value(s, d, sizes) == 0) return Py_NewRef(MISS); /* slow path raises numpy's error */
    }
    PyObject *outs[MAXARGS];
    for (int o = 0; o < self->n_out; o++) {
        const Spec *s = &self->out[o];
        npy_intp dims[MAXDIM];
        for (int d = 0; d < s->ndim; d++) dims[d] = (npy_intp)dim_value(s, d, sizes);
        outs[o] = PyArray_SimpleNew(s->ndim, dims, s->typenum);
        if (!outs[o]) {
            for (int p = 0; p < o; p++) Py_DECREF(outs[p]);
            return NULL;
        }
        ptrs[self->n_in + o] = PyArray_DATA((PyArrayObject *)outs[o]);
    }
    for (int c = 0; c < self->n_const; c++) ptrs[self->n_in + self->n_out + c] = self->const_ptr[c];
    if (self->split && sizes[self->split_sym] >= self->split_min_rows) {
        Plan *sub = self->split;
        struct timespec t0, t1;
        int timed = sub->on_hot != NULL;
        if (timed) clock_gettime(CLOCK_MONOTONIC, &t0);
        int32_t rc = run_split(self, ptrs, sizes);
        if (timed) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            sub->busy += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        }
        PyObject *result = finish_call(self, outs, args, scalars, rc);
        if (result && sub->on_hot && sub->busy >= sub->hot_after) result = call_on_hot(sub, result);
        return result;
    }
    /* workspace: the kernel's layout (schedule.workspace_layout) */
    size_t need = ws_need(self, sizes);
    char *owned = NULL;
    char *ws = need ? reuse_buffer(&self->ws_buf, &self->ws_cap, self->ws_busy, need, &owned) : NULL;
    if (need && !ws) {
        for (int o = 0; o < self->n_out; o++) Py_DECREF(outs[o]);
        return PyErr_NoMemory();
    }
    int was_busy = self->ws_busy;
    if (!owned) self->ws_busy = 1;
    struct timespec t0, t1;
    int timed = self->on_hot != NULL;   /* two clock reads a call (vDSO: ~20 ns each) */
    if (timed) clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t rc = self->fn(ptrs, sizes, ws);
    if (timed) {
        clock_gettime(CLOCK_MONOTONIC, &t1);
        self->busy += (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    }
    if (!owned) self->ws_busy = was_busy;
    free(owned);
    PyObject *result = finish_call(self, outs, args, scalars, rc);
    if (result && self->on_hot && self->busy >= self->hot_after) result = call_on_hot(self, result);
    return result;
}

/* set_hot(seconds, callback): call callback(plan) once, from the call after which the
 * kernel has run `seconds` in all (counted from now); set_hot(0, None) disarms. */
static PyObject *Plan_set_hot(Plan *self, PyObject *args) {
    double seconds;
    PyObject *cb;
    if (!PyArg_ParseTuple(args, "dO", &seconds, &cb)) return NULL;
    if (cb != Py_None && !PyCallable_Check(cb)) {
        PyErr_SetString(PyExc_TypeError, "set_hot's callback must be callable or None");
        return NULL;
    }
    Py_XSETREF(self->on_hot, cb == Py_None ? NULL : Py_NewRef(cb));
    self->hot_after = seconds;
    self->busy = 0.0;
    Py_RETURN_NONE;
}

/* set_kernel(address): later calls run the kernel at `address` (the same signature and
 * workspace: the same schedule compiled again). */
static PyObject *Plan_set_kernel(Plan *self, PyObject *args) {
    unsigned long long addr;
    if (!PyArg_ParseTuple(args, "K", &addr)) return NULL;
    if (!addr) { PyErr_SetString(PyExc_ValueError, "a kernel address of 0"); return NULL; }
    self->fn = (kernel_fn)(uintptr_t)addr;
    Py_RETURN_NONE;
}

/* set_split(part_plan, symbol, parts, min_rows, row_inputs, counts, out_kinds, part_symbols[, first]):
 * calls whose batch (size symbol `symbol`) has at least `min_rows` rows run as `parts`
 * parts on gradc's pool, each calling part_plan's kernel (the graph of
 * gradc/backends/batch_split.py) on its rows: row_inputs[i] true for an input whose
 * leading axis is the batch; counts: a spec per extra scalar input of the part kernel
 * (its dtype, the dims whose product it is, over the whole batch); out_kinds[o]: 0 the
 * output's rows, 1 a sum over the batch (parts add), 2 batch-free (the first part's);
 * part_symbols[k]: this plan's symbol for the part kernel's symbol k; first: the part
 * kernel's last input is a bool, true in the first part only (batch_split's batch-free
 * terms).  set_split(None) runs calls whole again. */
static PyObject *Plan_set_split(Plan *self, PyObject *args) {
    PyObject *sub, *rows, *counts, *kinds, *symbols;
    int sym, parts, first = 0;
    long long min_rows;
    if (PyTuple_GET_SIZE(args) == 1 && PyTuple_GET_ITEM(args, 0) == Py_None) {
        Py_CLEAR(self->split);
        Py_RETURN_NONE;
    }
    if (!PyArg_ParseTuple(args, "O!iiLO!O!O!O!|p", &PlanType, &sub, &sym, &parts, &min_rows, &PyTuple_Type, &rows,
                          &PyTuple_Type, &counts, &PyTuple_Type, &kinds, &PyTuple_Type, &symbols, &first))
        return NULL;
    Plan *p = (Plan *)sub;
    int n_count = 0;
    Spec count[MAXARGS];
    if (parse_specs(counts, count, &n_count) < 0) return NULL;
    const char *bad = NULL;
    if (sym < 0 || sym >= self->n_sym) bad = "the batch's symbol is not one of the plan's";
    else if (parts < 2 || parts > MAXPARTS) bad = "parts must be 2 .. 64";
    else if (min_rows < parts) bad = "min_rows must be at least the number of parts";
    else if (PyTuple_GET_SIZE(rows) != self->n_in) bad = "one row_inputs flag per input";
    else if (PyTuple_GET_SIZE(kinds) != self->n_out || p->n_out != self->n_out) bad = "one out_kind per output, as many outputs as the part plan";
    else if (p->n_in != self->n_in + n_count + first) bad = "the part plan takes the inputs, then the counts (and first)";
    else if (first && p->in[p->n_in - 1].typenum != NPY_BOOL) bad = "first is a bool input";
    else if (PyTuple_GET_SIZE(symbols) != p->n_sym) bad = "one symbol per part plan symbol";
    else if (p->n_in + p->n_out + p->n_const > 3 * MAXARGS) bad = "too many buffers";
    if (bad) { PyErr_SetString(PyExc_ValueError, bad); return NULL; }
    signed char in_rows[MAXARGS], out_kind[MAXARGS];
    int sub_sym[MAXSYM];
    for (int i = 0; i < self->n_in; i++) {
        int f = PyObject_IsTrue(PyTuple_GET_ITEM(rows, i));
        if (f < 0) return NULL;
        const Spec *s = &self->in[i];
        if (f && (s->ndim < 1 || s->dims[0] != -(sym + 1))) {
            PyErr_SetString(PyExc_ValueError, "a row input must have the batch as its leading axis"); return NULL;
        }
        in_rows[i] = (signed char)f;
    }
    for (int o = 0; o < self->n_out; o++) {
        long k = PyLong_AsLong(PyTuple_GET_ITEM(kinds, o));
        const Spec *s = &self->out[o];
        int ok = k == 0 ? (s->ndim >= 1 && s->dims[0] == -(sym + 1))
                        : (k == 1 ? (s->typenum == NPY_DOUBLE || s->typenum == NPY_FLOAT) : k == 2);
        for (int d = k == 0 ? 1 : 0; ok && d < s->ndim; d++) ok = s->dims[d] != -(sym + 1);
        if (!ok) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "an out_kind that does not fit its output");
            return NULL;
        }
        out_kind[o] = (signed char)k;
    }
    for (int k = 0; k < p->n_sym; k++) {
        long v = PyLong_AsLong(PyTuple_GET_ITEM(symbols, k));
        if (v < 0 || v >= self->n_sym) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "a part symbol that is not the plan's");
            return NULL;
        }
        sub_sym[k] = (int)v;
    }
    for (int j = 0; j < n_count; j++)
        if (count[j].typenum != NPY_DOUBLE && count[j].typenum != NPY_FLOAT) {
            PyErr_SetString(PyExc_ValueError, "counts are float64 or float32"); return NULL;
        }
    memcpy(self->in_rows, in_rows, sizeof in_rows);
    memcpy(self->out_kind, out_kind, sizeof out_kind);
    memcpy(self->sub_sym, sub_sym, sizeof sub_sym);
    memcpy(self->count, count, sizeof count);
    self->n_count = n_count;
    self->split_first = first;
    self->split_sym = sym;
    self->split_parts = parts;
    self->split_min_rows = min_rows;
    Py_XSETREF(self->split, (Plan *)Py_NewRef(sub));
    Py_RETURN_NONE;
}

/* set_split_chunk(bytes, min_rows): each part of a split call runs its rows in chunks
 * whose workspace and rows of the inputs and outputs take about `bytes`, of at least
 * min_rows rows (bytes 0: all at once). */
static PyObject *Plan_set_split_chunk(Plan *self, PyObject *args) {
    long long bytes, min_rows;
    if (!PyArg_ParseTuple(args, "LL", &bytes, &min_rows)) return NULL;
    if (bytes < 0 || min_rows < 1) {
        PyErr_SetString(PyExc_ValueError, "set_split_chunk needs bytes >= 0 and min_rows >= 1");
        return NULL;
    }
    self->split_chunk_bytes = bytes;
    self->split_chunk_min = min_rows;
    Py_RETURN_NONE;
}

/* address() -> the address of the kernel the plan calls. */
static PyObject *Plan_address(Plan *self, PyObject *unused) {
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)self->fn);
}

/* split_parts(rows) -> parts a call with `rows` rows of the batch runs as (1: whole). */
static PyObject *Plan_split_parts(Plan *self, PyObject *args) {
    long long rows;
    if (!PyArg_ParseTuple(args, "L", &rows)) return NULL;
    return PyLong_FromLong(self->split && rows >= self->split_min_rows ? self->split_parts : 1);
}

/* busy() -> seconds of kernel time counted since set_hot (0 when never armed). */
static PyObject *Plan_busy(Plan *self, PyObject *unused) { return PyFloat_FromDouble(self->busy); }

static PyMethodDef Plan_methods[] = {
    {"set_hot", (PyCFunction)Plan_set_hot, METH_VARARGS,
     "set_hot(seconds, callback): call callback(plan) once the kernel has run `seconds` in all."},
    {"set_kernel", (PyCFunction)Plan_set_kernel, METH_VARARGS,
     "set_kernel(address): run the kernel at `address` from the next call on."},
    {"busy", (PyCFunction)Plan_busy, METH_NOARGS, "Seconds of kernel time counted since set_hot."},
    {"address", (PyCFunction)Plan_address, METH_NOARGS, "The address of the kernel the plan calls."},
    {"set_split", (PyCFunction)Plan_set_split, METH_VARARGS,
     "set_split(part_plan, symbol, parts, min_rows, row_inputs, counts, out_kinds, part_symbols[, first]): run calls with "
     "at least min_rows rows of the batch as parts on gradc's pool; set_split(None): whole again."},
    {"set_split_chunk", (PyCFunction)Plan_set_split_chunk, METH_VARARGS,
     "set_split_chunk(bytes, min_rows): each part of a split call runs its rows in chunks of about `bytes` "
     "of workspace and row data, at least min_rows rows (bytes 0: all at once)."},
    {"split_parts", (PyCFunction)Plan_split_parts, METH_VARARGS,
     "split_parts(rows) -> the parts a call with this many rows of the batch runs as (1: whole)."},
    {NULL, NULL, 0, NULL}};

static PyTypeObject PlanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gradc._callpath.Plan",
    .tp_basicsize = sizeof(Plan),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Plan_init,
    .tp_dealloc = (destructor)Plan_dealloc,
    .tp_call = (ternaryfunc)Plan_call,
    .tp_methods = Plan_methods,
    .tp_doc = "A compiled signature's checked call: Plan(*args) -> result or MISS.",
};

/* Dispatch: the base of gradc's transformed functions (gradc.api.Transformed).
 *
 * Calling a transformed function runs its `_fast` path (the Plan of the most recent
 * signature, or another callable returning a result or MISS) straight from C; only a MISS,
 * keyword arguments or no fast path call the Python method `_slow_call(args, kwargs)`.
 * A Python-level __call__ cost a frame, a kwargs dict and a second call: 200-400 ns of
 * a value_and_grad call that takes 0.5-1 µs on small arrays. */
typedef struct {
    PyObject_HEAD
    PyObject *fast;     /* NULL, a Plan, or any callable */
} Dispatch;

static PyObject *SLOW_NAME;

static PyObject *Dispatch_call(Dispatch *self, PyObject *args, PyObject *kw) {
    int has_kw = kw && PyDict_GET_SIZE(kw);
    if (self->fast && !has_kw) {
        PyObject *fast = Py_NewRef(self->fast);  /* config() may drop it mid-call */
        PyObject *r = Py_IS_TYPE(fast, &PlanType) ? Plan_call((Plan *)fast, args, NULL)
                                                  : PyObject_Call(fast, args, NULL);
        Py_DECREF(fast);
        if (r != MISS) return r; /* a result, or NULL with the error set */
        Py_DECREF(r);
    }
    PyObject *kwargs = has_kw ? Py_NewRef(kw) : PyDict_New();
    if (!kwargs) return NULL;
    PyObject *r = PyObject_CallMethodObjArgs((PyObject *)self, SLOW_NAME, args, kwargs, NULL);
    Py_DECREF(kwargs);
    return r;
}

static PyObject *Dispatch_get_fast(Dispatch *self, void *unused) {
    return Py_NewRef(self->fast ? self->fast : Py_None);
}

static int Dispatch_set_fast(Dispatch *self, PyObject *value, void *unused) {
    if (value && value != Py_None && !PyCallable_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "_fast must be callable or None");
        return -1;
    }
    Py_XSETREF(self->fast, (value && value != Py_None) ? Py_NewRef(value) : NULL);
    return 0;
}

static int Dispatch_traverse(Dispatch *self, visitproc visit, void *arg) {
    Py_VISIT(self->fast);
    return 0;
}

static int Dispatch_clear(Dispatch *self) {
    Py_CLEAR(self->fast);
    return 0;
}

static void Dispatch_dealloc(Dispatch *self) {
    PyObject_GC_UnTrack(self);
    Dispatch_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyGetSetDef Dispatch_getset[] = {
    {"_fast", (getter)Dispatch_get_fast, (setter)Dispatch_set_fast,
     "The C call path of the most recent signature (a Plan or a callable returning MISS), or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL}};

static PyTypeObject DispatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gradc._callpath.Dispatch",
    .tp_basicsize = sizeof(Dispatch),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Dispatch_dealloc,
    .tp_traverse = (traverseproc)Dispatch_traverse,
    .tp_clear = (inquiry)Dispatch_clear,
    .tp_call = (ternaryfunc)Dispatch_call,
    .tp_getset = Dispatch_getset,
    .tp_doc = "Calls `_fast` (when set) and, on MISS or keyword arguments, self._slow_call(args, kwargs).",
};

static PyObject *parallel_for_address(PyObject *self, PyObject *unused) {
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)&gradc_parallel_for);
}

static PyObject *combine_address(PyObject *self, PyObject *unused) {
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)&gradc_combine);
}

static PyObject *gemm_small_address(PyObject *self, PyObject *unused) {
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)&gradc_gemm_small);
}

static PyObject *skinny_gemm_address(PyObject *self, PyObject *unused) {
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)&gradc_skinny_gemm);
}

static PyObject *skinny_rows_addresses(PyObject *self, PyObject *unused) {
    return Py_BuildValue("KKK", (unsigned long long)(uintptr_t)&gradc_skinny_pack,
                         (unsigned long long)(uintptr_t)&gradc_skinny_rows,
                         (unsigned long long)(uintptr_t)&gradc_skinny_unpad);
}

/* gemm_small_route(itemsize, ta, tb, m, n, k) -> 0 OpenBLAS, 1 gradc's kernel, 2 the kernel
 * on the transpose: how gradc_pool_{d,s}gemm runs a whole product (poolgemm.c), for tests. */
static PyObject *gemm_small_route(PyObject *self, PyObject *args) {
    int item, ta, tb;
    long long m, n, k;
    if (!PyArg_ParseTuple(args, "iiiLLL", &item, &ta, &tb, &m, &n, &k)) return NULL;
    if (gemm_small_isa() == 0) return PyLong_FromLong(0);
    if (gemm_small_wants(ta, tb, m, n, k)) return PyLong_FromLong(1);
    if ((double)m * (double)n * (double)k <= GRADC_BLAS_THREADS_FROM) return PyLong_FromLong(0);
    return PyLong_FromLong(gemm_small_flipped((size_t)item, ta, tb, m, n, k) ? 2 : 0);
}

static PyObject *skinny_forms(PyObject *self, PyObject *args) {
    int level;
    if (!PyArg_ParseTuple(args, "i", &level)) return NULL;
    return PyLong_FromLong(gradc_skinny_force(level));
}

/* pool_gemm_register(dgemm, sgemm, set_threads, get_threads, ilp64) -> (pool dgemm,
 * pool sgemm): the addresses of numpy's CBLAS gemm functions and of OpenBLAS's thread
 * count setter and getter in, the addresses generated kernels call out. */
static PyObject *pool_gemm_register(PyObject *self, PyObject *args) {
    unsigned long long d, s, set, get;
    int ilp64;
    if (!PyArg_ParseTuple(args, "KKKKp", &d, &s, &set, &get, &ilp64)) return NULL;
    pool_gemm_d = (void *)(uintptr_t)d;
    pool_gemm_s = (void *)(uintptr_t)s;
    pool_blas_set = (gradc_blas_set_threads)(uintptr_t)set;
    pool_blas_get = (gradc_blas_get_threads)(uintptr_t)get;
    pool_gemm_ilp64 = ilp64;
    uintptr_t out[2];
    pool_gemm_addresses(out);
    return Py_BuildValue("KK", (unsigned long long)out[0], (unsigned long long)out[1]);
}

/* pool_gemm_batched_addresses() -> (dgemm, sgemm): gradc's batched products (a stack of
 * one shape, runtime/poolgemm.c), for the library pool_gemm_register registered. */
static PyObject *pool_gemm_batched(PyObject *self, PyObject *unused) {
    uintptr_t out[2];
    pool_gemm_batched_addresses(out);
    return Py_BuildValue("KK", (unsigned long long)out[0], (unsigned long long)out[1]);
}

/* lapack_register(addresses) -> address of gradc_lapack: ``addresses`` are the
 * ILP64 routines dgesv, dgetrf, dpotrf, dsyevd, dtrtrs, then sgesv ... strtrs (numpy's
 * LAPACK, found by gradc.backends.blas.find_lapack); runtime/lapack.c calls them. */
static PyObject *lapack_register(PyObject *self, PyObject *args) {
    unsigned long long f[10];
    if (!PyArg_ParseTuple(args, "KKKKKKKKKK", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6], &f[7], &f[8], &f[9]))
        return NULL;
    for (int t = 0; t < 2; t++) {
        la_gesv[t] = (la_gesv_t)(uintptr_t)f[5 * t];
        la_getrf[t] = (la_getrf_t)(uintptr_t)f[5 * t + 1];
        la_potrf[t] = (la_potrf_t)(uintptr_t)f[5 * t + 2];
        la_syevd[t] = (la_syevd_t)(uintptr_t)f[5 * t + 3];
        la_trtrs[t] = (la_trtrs_t)(uintptr_t)f[5 * t + 4];
    }
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)&gradc_lapack);
}

/* lapack_register_rect(addresses) -> None: dgesdd, dgeqrf, dorgqr, then sgesdd, sgeqrf,
 * sorgqr, for linalg.svd and linalg.qr (runtime/lapack.c's rectangular routines). */
/* sort_rank_address() -> address of gradc_sort_rank (runtime/sortrank.c). */
static PyObject *sort_rank_address(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)&gradc_sort_rank);
}

/* sort_rank_kinds() -> the numpy dtype kinds gradc_sort_rank ranks: "fiub" (floats,
 * signed and unsigned integers, bool).  An extension without it ranks floats only. */
static PyObject *sort_rank_kinds(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyUnicode_FromString("fiub");
}

static PyObject *lapack_register_rect(PyObject *self, PyObject *args) {
    unsigned long long f[6];
    if (!PyArg_ParseTuple(args, "KKKKKK", &f[0], &f[1], &f[2], &f[3], &f[4], &f[5])) return NULL;
    for (int t = 0; t < 2; t++) {
        la_gesdd[t] = (la_gesdd_t)(uintptr_t)f[3 * t];
        la_geqrf[t] = (la_geqrf_t)(uintptr_t)f[3 * t + 1];
        la_orgqr[t] = (la_orgqr_t)(uintptr_t)f[3 * t + 2];
    }
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"sort_rank_address", sort_rank_address, METH_NOARGS,
     "sort_rank_address() -> the address of gradc_sort_rank (stable ranks of rows of numbers)"},
    {"sort_rank_kinds", sort_rank_kinds, METH_NOARGS,
     "sort_rank_kinds() -> the numpy dtype kinds gradc_sort_rank ranks (\"fiub\")"},
    {"lapack_register_rect", lapack_register_rect, METH_VARARGS,
     "Register numpy's LAPACK routines for SVD and QR (ILP64 gesdd, geqrf, orgqr; double then float)."},
    {"lapack_register", lapack_register, METH_VARARGS,
     "Register numpy's LAPACK routines (ILP64 gesv, getrf, potrf, syevd, trtrs; double then float); returns the "
     "address of gradc_lapack, which generated kernels call for linear algebra (runtime/lapack.c)."},
    {"pool_gemm_register", pool_gemm_register, METH_VARARGS,
     "Register numpy's CBLAS gemm and OpenBLAS's thread-count setter and getter; returns the addresses of "
     "gradc's pool-split dgemm and sgemm (runtime/poolgemm.c)."},
    {"pool_gemm_batched_addresses", pool_gemm_batched, METH_NOARGS,
     "Addresses of gradc's batched dgemm and sgemm (a stack of products of one shape, on gradc's pool)."},
    {"parallel_for_address", parallel_for_address, METH_NOARGS,
     "Address of gradc_parallel_for, the thread pool generated kernels call."},
    {"combine_address", combine_address, METH_NOARGS,
     "Address of gradc_combine, which merges per-chunk partial reductions."},
    {"gemm_small_address", gemm_small_address, METH_NOARGS,
     "Address of gradc_gemm_small, gradc's own kernel for products with a short inner dimension (runtime/gemm_small.c)."},
    {"skinny_gemm_address", skinny_gemm_address, METH_NOARGS,
     "Address of gradc_skinny_gemm, matrix products with at most 16 columns (runtime/skinny.c)."},
    {"skinny_rows_addresses", skinny_rows_addresses, METH_NOARGS,
     "Addresses of gradc_skinny_pack, gradc_skinny_rows and gradc_skinny_unpad, a row pipeline's single-threaded narrow products "
     "(runtime/skinny.c)."},
    {"gemm_small_route", gemm_small_route, METH_VARARGS,
     "gemm_small_route(itemsize, ta, tb, m, n, k) -> 0 OpenBLAS, 1 gradc's kernel, 2 the kernel on the transpose: how "
     "a product C[m, n] = op(A) @ op(B) with inner dimension k runs on gradc's pool (runtime/poolgemm.c)."},
    {"skinny_forms", skinny_forms, METH_VARARGS,
     "skinny_forms(level) -> previous level: which forms a row pipeline's narrow products run, for tests: -1 chosen "
     "by CPU and width (the default), 0 the padded kernels, 3 the AVX2 lane-filling forms, 4 the AVX-512 ones (each "
     "where the CPU runs it and the form exists; runtime/skinny.c)."},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef moddef = {PyModuleDef_HEAD_INIT, "_callpath", "gradc's native call path.", -1, methods};

PyMODINIT_FUNC PyInit__callpath(void) {
    import_array();
    if (PyType_Ready(&PlanType) < 0 || PyType_Ready(&DispatchType) < 0) return NULL;
    SLOW_NAME = PyUnicode_InternFromString("_slow_call");
    if (!SLOW_NAME) return NULL;
    PyObject *m = PyModule_Create(&moddef);
    if (!m) return NULL;
    MISS = PyObject_CallObject((PyObject *)&PyBaseObject_Type, NULL);
    if (!MISS || PyModule_AddObjectRef(m, "MISS", MISS) < 0) return NULL;
    if (PyModule_AddObjectRef(m, "Plan", (PyObject *)&PlanType) < 0) return NULL;
    if (PyModule_AddObjectRef(m, "Dispatch", (PyObject *)&DispatchType) < 0) return NULL;
    /* 2: a result may copy an argument; 3: set_split; 4: a linear algebra status is a
     * MISS (gradc/backends/kernel.py reads this: a stale build of the extension is not
     * handed plans it cannot read) */
    if (PyModule_AddIntConstant(m, "PLAN_VERSION", 5) < 0) return NULL;
    /* one past the last routine code gradc_lapack knows (runtime/lapack.c's GRADC_LA_*):
     * 21 from scipy.linalg.lu's routines on (tests/lapack_support.py reads it) */
    if (PyModule_AddIntConstant(m, "LAPACK_ROUTINES", 21) < 0) return NULL;
    return m;
}
