/*
 * cw_config: declared options from file, environment and flags.
 */

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cw_buf.h"
#include "cw_config.h"

extern char **environ;

typedef struct {
    const cw_opt_t  *opt;
    const char      *def;          /* the table's default, or the worker's */
    char            *value;        /* effective text; NULL when unset */
    cw_source_t      src;
    char             origin[320];
    long long        num;          /* parsed INT, DURATION (ms) or BOOL */
} cw_entry_t;

typedef struct {
    char            *key;          /* full key, prefix included */
    char            *value;
    cw_source_t      src;
    char             origin[320];
} cw_passthru_t;

struct cw_config_s {
    char            *prog;
    char            *summary;
    cw_entry_t      *entries;
    size_t           n;
    size_t           cap;
    cw_passthru_t   *pts;
    size_t           npts;
    size_t           ptcap;
};


static void
cw_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));


static void
cw_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


cw_config_t *
cw_config_new(const char *prog, const char *summary)
{
    cw_config_t  *c;

    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->prog = strdup(prog ? prog : "worker");
    c->summary = strdup(summary ? summary : "");
    if (c->prog == NULL || c->summary == NULL) {
        cw_config_free(c);
        return NULL;
    }
    return c;
}


void
cw_config_free(cw_config_t *c)
{
    size_t  i;

    if (c == NULL) {
        return;
    }
    for (i = 0; i < c->n; i++) {
        free(c->entries[i].value);
    }
    for (i = 0; i < c->npts; i++) {
        free(c->pts[i].key);
        free(c->pts[i].value);
    }
    free(c->entries);
    free(c->pts);
    free(c->prog);
    free(c->summary);
    free(c);
}


/* Compares option names treating '-' and '_' as the same character, so
 * --bootstrap-file matches the key bootstrap_file. */
static int
cw_key_eq(const char *a, const char *b, size_t blen)
{
    size_t  i;

    for (i = 0; i < blen; i++) {
        char x = a[i], y = b[i];

        if (x == '\0') {
            return 0;
        }
        if (x == '-') {
            x = '_';
        }
        if (y == '-') {
            y = '_';
        }
        if (x != y) {
            return 0;
        }
    }
    return a[blen] == '\0';
}


static cw_entry_t *
cw_find(const cw_config_t *c, const char *key, size_t len)
{
    size_t  i;

    for (i = 0; i < c->n; i++) {
        if (c->entries[i].opt->type != CW_OPT_PREFIX
            && cw_key_eq(c->entries[i].opt->key, key, len))
        {
            return &c->entries[i];
        }
    }
    return NULL;
}


static const cw_entry_t *
cw_find_prefix(const cw_config_t *c, const char *key, size_t len)
{
    size_t  i, plen;

    for (i = 0; i < c->n; i++) {
        if (c->entries[i].opt->type != CW_OPT_PREFIX) {
            continue;
        }
        plen = strlen(c->entries[i].opt->key);
        if (len > plen && strncmp(key, c->entries[i].opt->key, plen) == 0) {
            return &c->entries[i];
        }
    }
    return NULL;
}


int
cw_config_declare(cw_config_t *c, const cw_opt_t *opts, size_t n)
{
    cw_entry_t  *e;
    size_t       i, cap;

    for (i = 0; i < n; i++) {
        if (cw_find(c, opts[i].key, strlen(opts[i].key)) != NULL) {
            return -1;
        }
    }
    if (c->n + n > c->cap) {
        cap = c->cap ? c->cap : 16;
        while (cap < c->n + n) {
            cap *= 2;
        }
        e = realloc(c->entries, cap * sizeof(*e));
        if (e == NULL) {
            return -1;
        }
        c->entries = e;
        c->cap = cap;
    }
    for (i = 0; i < n; i++) {
        e = &c->entries[c->n++];
        memset(e, 0, sizeof(*e));
        e->opt = &opts[i];
        e->def = opts[i].def;
    }
    return 0;
}


static int
cw_set(cw_entry_t *e, const char *value, size_t len, cw_source_t src,
    const char *origin)
{
    char  *v;

    v = strndup(value, len);
    if (v == NULL) {
        return -1;
    }
    free(e->value);
    e->value = v;
    e->src = src;
    snprintf(e->origin, sizeof(e->origin), "%s", origin);
    return 0;
}


/* Records a pass-through key; a later source replaces an earlier one. */
static int
cw_set_passthru(cw_config_t *c, const char *key, size_t klen,
    const char *value, size_t vlen, cw_source_t src, const char *origin)
{
    cw_passthru_t  *p = NULL;
    size_t          i;
    char           *k, *v;

    for (i = 0; i < c->npts; i++) {
        if (strlen(c->pts[i].key) == klen
            && strncmp(c->pts[i].key, key, klen) == 0)
        {
            p = &c->pts[i];
            break;
        }
    }
    if (p == NULL) {
        if (c->npts == c->ptcap) {
            size_t cap = c->ptcap ? c->ptcap * 2 : 8;

            p = realloc(c->pts, cap * sizeof(*p));
            if (p == NULL) {
                return -1;
            }
            c->pts = p;
            c->ptcap = cap;
        }
        p = &c->pts[c->npts];
        memset(p, 0, sizeof(*p));
        k = strndup(key, klen);
        if (k == NULL) {
            return -1;
        }
        p->key = k;
        c->npts++;
    }
    v = strndup(value, vlen);
    if (v == NULL) {
        return -1;
    }
    free(p->value);
    p->value = v;
    p->src = src;
    snprintf(p->origin, sizeof(p->origin), "%s", origin);
    return 0;
}


int
cw_parse_int(const char *s, long long *out)
{
    char       *end;
    long long   v;

    while (isspace((unsigned char) *s)) {
        s++;
    }
    if (*s == '\0') {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s) {
        return -1;
    }
    while (isspace((unsigned char) *end)) {
        end++;
    }
    if (*end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}


/* Parses "250ms", "5s", "1m30s", "2h", "1d"; a bare integer is taken as
 * milliseconds. Negative values and overflow are rejected. */
int
cw_parse_duration_ms(const char *s, long long *out)
{
    long long  total = 0, n, mult;
    int        parts = 0;

    if (cw_parse_int(s, &n) == 0) {
        if (n < 0) {
            return -1;
        }
        *out = n;
        return 0;
    }
    while (isspace((unsigned char) *s)) {
        s++;
    }
    while (*s != '\0' && !isspace((unsigned char) *s)) {
        if (!isdigit((unsigned char) *s)) {
            return -1;
        }
        n = 0;
        while (isdigit((unsigned char) *s)) {
            if (n > (LLONG_MAX - 9) / 10) {
                return -1;
            }
            n = n * 10 + (*s++ - '0');
        }
        if (s[0] == 'm' && s[1] == 's') {
            mult = 1;
            s += 2;
        } else if (s[0] == 's') {
            mult = 1000;
            s++;
        } else if (s[0] == 'm') {
            mult = 60 * 1000;
            s++;
        } else if (s[0] == 'h') {
            mult = 3600 * 1000;
            s++;
        } else if (s[0] == 'd') {
            mult = 86400LL * 1000;
            s++;
        } else {
            return -1;
        }
        if (n > (LLONG_MAX - total) / mult) {
            return -1;
        }
        total += n * mult;
        parts++;
    }
    while (isspace((unsigned char) *s)) {
        s++;
    }
    if (*s != '\0' || parts == 0) {
        return -1;
    }
    *out = total;
    return 0;
}


int
cw_parse_bool(const char *s, int *out)
{
    static const char  *yes[] = { "1", "true", "yes", "on" };
    static const char  *no[] = { "0", "false", "no", "off" };
    size_t              i;

    for (i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}


static const char *
cw_type_name(cw_opt_type_t t)
{
    switch (t) {
    case CW_OPT_STR:      return "STR";
    case CW_OPT_INT:      return "INT";
    case CW_OPT_DURATION: return "DURATION";
    case CW_OPT_BOOL:     return "BOOL";
    case CW_OPT_PREFIX:   return "VALUE";
    }
    return "?";
}


/* Parses and range-checks one entry's effective value. */
static int
cw_validate(cw_entry_t *e, char *err, size_t errlen)
{
    const cw_opt_t  *o = e->opt;
    long long        v;
    int              b;

    if (e->value == NULL || e->value[0] == '\0') {
        if (o->flags & CW_OPT_REQUIRED) {
            cw_err(err, errlen, "option \"%s\" is required but %s", o->key,
                   e->value == NULL ? "not set" : "empty");
            return -1;
        }
        e->num = 0;
        if (o->type == CW_OPT_STR || e->value == NULL) {
            return 0;
        }
        cw_err(err, errlen, "option \"%s\" from %s: empty %s value", o->key,
               e->origin, o->type == CW_OPT_BOOL ? "bool" : "numeric");
        return -1;
    }

    switch (o->type) {
    case CW_OPT_STR:
    case CW_OPT_PREFIX:
        return 0;

    case CW_OPT_BOOL:
        if (cw_parse_bool(e->value, &b) != 0) {
            cw_err(err, errlen, "option \"%s\" from %s: invalid bool \"%s\" "
                   "(use true/false, yes/no, on/off, 1/0)", o->key,
                   e->origin, e->value);
            return -1;
        }
        e->num = b;
        return 0;

    case CW_OPT_INT:
        if (cw_parse_int(e->value, &v) != 0) {
            cw_err(err, errlen, "option \"%s\" from %s: invalid integer "
                   "\"%s\"", o->key, e->origin, e->value);
            return -1;
        }
        break;

    case CW_OPT_DURATION:
        if (cw_parse_duration_ms(e->value, &v) != 0) {
            cw_err(err, errlen, "option \"%s\" from %s: invalid duration "
                   "\"%s\" (use e.g. 250ms, 5s, 1m30s)", o->key, e->origin,
                   e->value);
            return -1;
        }
        break;
    }

    if (o->min < o->max && (v < o->min || v > o->max)) {
        if (o->type == CW_OPT_DURATION) {
            cw_err(err, errlen, "option \"%s\" from %s: %s is out of range "
                   "[%lldms, %lldms]", o->key, e->origin, e->value, o->min,
                   o->max);
        } else {
            cw_err(err, errlen, "option \"%s\" from %s: %lld is out of range "
                   "[%lld, %lld]", o->key, e->origin, v, o->min, o->max);
        }
        return -1;
    }
    e->num = v;
    return 0;
}


static void
cw_trim(const char **s, const char **end)
{
    while (*s < *end && isspace((unsigned char) **s)) {
        (*s)++;
    }
    while (*end > *s && isspace((unsigned char) (*end)[-1])) {
        (*end)--;
    }
}


/* A pass-through default is recorded at once as the property's value,
 * with the source "default": any file or flag setting it replaces it
 * (cw_set_passthru), and --help lists it under its prefix. */
int
cw_config_set_default(cw_config_t *c, const char *key, const char *def)
{
    size_t       len = strlen(key);
    cw_entry_t  *e = cw_find(c, key, len);

    if (e == NULL) {
        if (cw_find_prefix(c, key, len) == NULL) {
            return -1;
        }
        return cw_set_passthru(c, key, len, def, strlen(def),
                               CW_SRC_DEFAULT, "default");
    }
    if (e->opt->type == CW_OPT_PREFIX || strcmp(e->opt->key, key) != 0) {
        return -1;
    }
    e->def = def;
    return 0;
}


int
cw_config_load_text(cw_config_t *c, const char *name, const char *text,
    char *err, size_t errlen)
{
    const char  *line, *eol, *eq, *k, *kend, *v, *vend;
    cw_entry_t  *e;
    char         origin[320];
    int          lineno = 0;

    for (line = text; *line != '\0'; line = *eol ? eol + 1 : eol) {
        eol = strchr(line, '\n');
        if (eol == NULL) {
            eol = line + strlen(line);
        }
        lineno++;
        k = line;
        kend = eol;
        cw_trim(&k, &kend);
        if (k == kend || *k == '#') {
            continue;
        }
        snprintf(origin, sizeof(origin), "file %s:%d", name, lineno);
        eq = memchr(k, '=', (size_t) (kend - k));
        if (eq == NULL) {
            cw_err(err, errlen, "%s: expected \"key = value\"", origin);
            return -1;
        }
        v = eq + 1;
        vend = kend;
        kend = eq;
        cw_trim(&k, &kend);
        cw_trim(&v, &vend);
        if (k == kend) {
            cw_err(err, errlen, "%s: missing key before '='", origin);
            return -1;
        }
        if (vend - v >= 2 && *v == '"' && vend[-1] == '"') {
            v++;
            vend--;
        }
        e = cw_find(c, k, (size_t) (kend - k));
        if (e != NULL) {
            if (cw_set(e, v, (size_t) (vend - v), CW_SRC_FILE, origin) != 0) {
                cw_err(err, errlen, "out of memory");
                return -1;
            }
            /* Parsed now too: text loaded after cw_config_load (e.g. a
             * worker's own defaults) must change what the getters see. */
            if (cw_validate(e, err, errlen) != 0) {
                return -1;
            }
        } else if (cw_find_prefix(c, k, (size_t) (kend - k)) != NULL) {
            if (cw_set_passthru(c, k, (size_t) (kend - k), v,
                                (size_t) (vend - v), CW_SRC_FILE, origin)
                != 0)
            {
                cw_err(err, errlen, "out of memory");
                return -1;
            }
        } else {
            cw_err(err, errlen, "%s: unknown option \"%.*s\"", origin,
                   (int) (kend - k), k);
            return -1;
        }
    }
    return 0;
}


static int
cw_load_file(cw_config_t *c, const char *path, char *err, size_t errlen)
{
    cw_buf_t   text;
    FILE      *f;
    char       chunk[4096];
    size_t     n;
    int        rc;

    f = fopen(path, "r");
    if (f == NULL) {
        cw_err(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    cw_buf_init(&text);
    cw_buf_puts(&text, "");
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        cw_buf_append(&text, chunk, n);
    }
    rc = ferror(f) || text.oom;
    fclose(f);
    if (rc) {
        cw_err(err, errlen, "config file %s: read failed", path);
        cw_buf_free(&text);
        return -1;
    }
    rc = cw_config_load_text(c, path, text.data, err, errlen);
    cw_buf_free(&text);
    return rc;
}


/* COMMERCE_ + key uppercased, '.' and '-' mapped to '_'. */
static void
cw_env_name(const char *key, char *buf, size_t size)
{
    size_t  i, n;

    n = (size_t) snprintf(buf, size, "%s", CW_CONFIG_ENV_PREFIX);
    for (i = 0; key[i] != '\0' && n + 1 < size; i++) {
        char ch = key[i];

        buf[n++] = (ch == '.' || ch == '-')
                   ? '_' : (char) toupper((unsigned char) ch);
    }
    buf[n] = '\0';
}


static const char *
cw_env_get(char *const envp[], const char *name)
{
    size_t  len = strlen(name);

    for ( ; envp != NULL && *envp != NULL; envp++) {
        if (strncmp(*envp, name, len) == 0 && (*envp)[len] == '=') {
            return *envp + len + 1;
        }
    }
    return NULL;
}


/* Finds --config and --help before anything else is read, because the
 * file must be loaded first and --help must work with a broken config. */
static int
cw_prescan(int argc, char *const argv[], const char **path, char *err,
    size_t errlen)
{
    int  i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
        if (strncmp(argv[i], "--config=", 9) == 0) {
            *path = argv[i] + 9;
        } else if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                cw_err(err, errlen, "flag --config needs a value");
                return -1;
            }
            *path = argv[++i];
        }
    }
    return 0;
}


static int
cw_load_flags(cw_config_t *c, int argc, char *const argv[], char *err,
    size_t errlen)
{
    const char  *arg, *name, *eq, *value;
    cw_entry_t  *e;
    size_t       nlen;
    char         origin[320];
    int          i, rc;

    for (i = 1; i < argc; i++) {
        arg = argv[i];
        if (strcmp(arg, "--") == 0) {
            if (i + 1 < argc) {
                cw_err(err, errlen, "unexpected argument \"%s\"", argv[i + 1]);
                return -1;
            }
            break;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            cw_err(err, errlen, "unexpected argument \"%s\" (options are "
                   "--key=value; see --help)", arg);
            return -1;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        nlen = eq ? (size_t) (eq - name) : strlen(name);

        if (cw_key_eq("config", name, nlen)) {
            if (eq == NULL) {
                i++;
            }
            continue;
        }
        snprintf(origin, sizeof(origin), "flag --%.*s", (int) nlen, name);

        e = cw_find(c, name, nlen);
        if (e == NULL && cw_find_prefix(c, name, nlen) == NULL) {
            cw_err(err, errlen, "unknown flag --%.*s (see --help)",
                   (int) nlen, name);
            return -1;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (e != NULL && e->opt->type == CW_OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            cw_err(err, errlen, "%s needs a value", origin);
            return -1;
        }

        if (e != NULL) {
            rc = cw_set(e, value, strlen(value), CW_SRC_FLAG, origin);
        } else {
            rc = cw_set_passthru(c, name, nlen, value, strlen(value),
                                 CW_SRC_FLAG, origin);
        }
        if (rc != 0) {
            cw_err(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}


int
cw_config_load(cw_config_t *c, int argc, char *const argv[],
    char *const envp[], char *err, size_t errlen)
{
    const char  *path = NULL, *v;
    cw_entry_t  *e;
    size_t       i;
    char         env[256], origin[320];
    int          rc;

    if (envp == NULL) {
        envp = environ;
    }
    rc = cw_prescan(argc, argv, &path, err, errlen);
    if (rc != 0) {
        return rc;
    }

    /* defaults */
    for (i = 0; i < c->n; i++) {
        e = &c->entries[i];
        if (e->opt->type != CW_OPT_PREFIX && e->def != NULL
            && cw_set(e, e->def, strlen(e->def), CW_SRC_DEFAULT,
                      "default") != 0)
        {
            cw_err(err, errlen, "out of memory");
            return -1;
        }
    }

    if (path == NULL) {
        path = cw_env_get(envp, CW_CONFIG_ENV_PREFIX "CONFIG");
    }
    if (path != NULL && path[0] != '\0'
        && cw_load_file(c, path, err, errlen) != 0)
    {
        return -1;
    }

    for (i = 0; i < c->n; i++) {
        e = &c->entries[i];
        if (e->opt->type == CW_OPT_PREFIX) {
            continue;
        }
        cw_env_name(e->opt->key, env, sizeof(env));
        v = cw_env_get(envp, env);
        if (v == NULL) {
            continue;
        }
        snprintf(origin, sizeof(origin), "env %s", env);
        if (cw_set(e, v, strlen(v), CW_SRC_ENV, origin) != 0) {
            cw_err(err, errlen, "out of memory");
            return -1;
        }
    }

    if (cw_load_flags(c, argc, argv, err, errlen) != 0) {
        return -1;
    }

    for (i = 0; i < c->n; i++) {
        if (cw_validate(&c->entries[i], err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}


/* The worker's defaults for pass-through properties under prefix. */
static void
cw_help_passthru(const cw_config_t *c, const char *prefix, FILE *out)
{
    size_t  i, plen = strlen(prefix);

    for (i = 0; i < c->npts; i++) {
        if (c->pts[i].src == CW_SRC_DEFAULT
            && strncmp(c->pts[i].key, prefix, plen) == 0)
        {
            fprintf(out, "  --%s=VALUE (file or flag only) default \"%s\"\n"
                    "      passed through; this program's default\n",
                    c->pts[i].key, c->pts[i].value);
        }
    }
}


void
cw_config_help(const cw_config_t *c, FILE *out)
{
    const cw_opt_t  *o;
    size_t           i, j;
    char             env[256], flag[256];

    fprintf(out, "Usage: %s [--option=value ...]\n", c->prog);
    if (c->summary[0] != '\0') {
        fprintf(out, "%s\n", c->summary);
    }
    fprintf(out, "\nEach option can also be set in the environment "
            "(shown in brackets) or in a\nconfig file of \"key = value\" "
            "lines; flags beat the environment, which beats\nthe file.\n\n");
    fprintf(out, "  --config=PATH [" CW_CONFIG_ENV_PREFIX "CONFIG]\n"
            "      config file to read\n");
    fprintf(out, "  --help\n      print this text and exit\n");

    for (i = 0; i < c->n; i++) {
        o = c->entries[i].opt;
        for (j = 0; o->key[j] != '\0' && j + 1 < sizeof(flag); j++) {
            flag[j] = o->key[j] == '_' ? '-' : o->key[j];
        }
        flag[j] = '\0';
        if (o->type == CW_OPT_PREFIX) {
            fprintf(out, "  --%s<name>=VALUE (file or flag only)\n", flag);
        } else {
            cw_env_name(o->key, env, sizeof(env));
            fprintf(out, "  --%s=%s [%s]", flag, cw_type_name(o->type), env);
            if (o->flags & CW_OPT_REQUIRED) {
                fprintf(out, " required");
            } else if (c->entries[i].def != NULL) {
                fprintf(out, " default \"%s\"", c->entries[i].def);
            }
            if (o->min < o->max) {
                fprintf(out, " range %lld..%lld%s", o->min, o->max,
                        o->type == CW_OPT_DURATION ? "ms" : "");
            }
            fputc('\n', out);
        }
        fprintf(out, "      %s\n", o->help ? o->help : "");
        if (o->type == CW_OPT_PREFIX) {
            cw_help_passthru(c, o->key, out);
        }
    }
}


/* Looks up a declared key for a getter; a getter on an undeclared key or
 * with the wrong type is a bug in the worker, reported loudly. */
static const cw_entry_t *
cw_get(const cw_config_t *c, const char *key, int type)
{
    const cw_entry_t  *e;

    e = cw_find(c, key, strlen(key));
    if (e == NULL || (type >= 0 && (int) e->opt->type != type)) {
        fprintf(stderr, "cw_config: option \"%s\" %s\n", key,
                e == NULL ? "is not declared" : "read with the wrong type");
        abort();
    }
    return e;
}


const char *
cw_config_str(const cw_config_t *c, const char *key)
{
    return cw_get(c, key, -1)->value;
}


long long
cw_config_int(const cw_config_t *c, const char *key)
{
    return cw_get(c, key, CW_OPT_INT)->num;
}


long long
cw_config_duration_ms(const cw_config_t *c, const char *key)
{
    return cw_get(c, key, CW_OPT_DURATION)->num;
}


int
cw_config_bool(const cw_config_t *c, const char *key)
{
    return (int) cw_get(c, key, CW_OPT_BOOL)->num;
}


cw_source_t
cw_config_source(const cw_config_t *c, const char *key)
{
    return cw_get(c, key, -1)->src;
}


const char *
cw_config_origin(const cw_config_t *c, const char *key)
{
    const cw_entry_t  *e = cw_get(c, key, -1);

    return e->src == CW_SRC_UNSET ? "unset" : e->origin;
}


int
cw_config_each_prefixed(const cw_config_t *c, const char *prefix,
    cw_config_each_pt cb, void *ud)
{
    size_t  i, plen = strlen(prefix);
    int     rc;

    for (i = 0; i < c->npts; i++) {
        if (strncmp(c->pts[i].key, prefix, plen) != 0) {
            continue;
        }
        rc = cb(ud, c->pts[i].key + plen, c->pts[i].value);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
