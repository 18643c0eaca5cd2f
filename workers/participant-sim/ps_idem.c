/*
 * ps_idem: the idempotency keys a provider remembers.
 *
 * A hash table of chained entries, and a ring of the same entries in the
 * order they came: when max keys are kept, the oldest is forgotten for
 * the new one (a real provider forgets its keys after a day; Stripe's
 * are kept 24 hours). Used by one thread, the consumer's.
 */

#include <stdlib.h>
#include <string.h>

#include "ps.h"

typedef struct ps_entry_s  ps_entry_t;

struct ps_entry_s {
    ps_entry_t    *next;            /* in its bucket */
    char          *key;
    ps_type_e      type;
    int            final;           /* outcome and answer are kept */
    ps_outcome_e   outcome;
    ps_answer_t   *answer;
    char          *note;            /* ps_idem_note's */
};

struct ps_idem_s {
    ps_entry_t   **buckets;
    size_t         mask;            /* buckets - 1, a power of two */
    ps_entry_t   **ring;            /* max slots, oldest at head */
    size_t         max;
    size_t         head;
    size_t         n;
};


/* FNV-1a */
static size_t
ps_hash(const char *s)
{
    uint64_t  h = 14695981039346656037ULL;

    while (*s != '\0') {
        h ^= (unsigned char) *s++;
        h *= 1099511628211ULL;
    }

    return (size_t) h;
}


ps_idem_t *
ps_idem_new(size_t max)
{
    size_t      nb = 16;
    ps_idem_t  *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        return NULL;
    }
    while (nb < 2 * max) {
        nb *= 2;
    }
    m->buckets = calloc(nb, sizeof(*m->buckets));
    m->ring = calloc(max, sizeof(*m->ring));
    if (m->buckets == NULL || m->ring == NULL) {
        free(m->buckets);
        free(m->ring);
        free(m);
        return NULL;
    }
    m->mask = nb - 1;
    m->max = max;

    return m;
}


static void
ps_entry_free(ps_entry_t *e)
{
    ps_answer_free(e->answer);
    free(e->note);
    free(e->key);
    free(e);
}


void
ps_idem_free(ps_idem_t *m)
{
    size_t  i;

    if (m == NULL) {
        return;
    }
    for (i = 0; i < m->n; i++) {
        ps_entry_free(m->ring[(m->head + i) % m->max]);
    }
    free(m->buckets);
    free(m->ring);
    free(m);
}


static ps_entry_t *
ps_idem_find(ps_idem_t *m, const char *key)
{
    ps_entry_t  *e;

    for (e = m->buckets[ps_hash(key) & m->mask]; e != NULL; e = e->next) {
        if (strcmp(e->key, key) == 0) {
            return e;
        }
    }

    return NULL;
}


/* Forgets the oldest key. */
static void
ps_idem_evict(ps_idem_t *m)
{
    ps_entry_t   *old = m->ring[m->head], **pp;

    pp = &m->buckets[ps_hash(old->key) & m->mask];
    while (*pp != old) {
        pp = &(*pp)->next;
    }
    *pp = old->next;

    ps_entry_free(old);
    m->head = (m->head + 1) % m->max;
    m->n--;
}


static ps_entry_t *
ps_idem_add(ps_idem_t *m, const char *key, ps_type_e type)
{
    size_t       b;
    ps_entry_t  *e = calloc(1, sizeof(*e));

    if (e == NULL || (e->key = strdup(key)) == NULL) {
        free(e);
        return NULL;
    }
    e->type = type;

    if (m->n == m->max) {
        ps_idem_evict(m);
    }
    b = ps_hash(key) & m->mask;
    e->next = m->buckets[b];
    m->buckets[b] = e;
    m->ring[(m->head + m->n) % m->max] = e;
    m->n++;

    return e;
}


int
ps_idem_see(ps_idem_t *m, const char *key, ps_type_e type, int *seen,
    ps_outcome_e *outcome, ps_answer_t **final_answer)
{
    ps_entry_t  *e = ps_idem_find(m, key);

    *final_answer = NULL;
    *seen = e != NULL;

    if (e == NULL) {
        return ps_idem_add(m, key, type) != NULL ? 0 : -1;
    }
    if (e->type != type) {
        return PS_CONFLICT;
    }
    if (e->final) {
        *outcome = e->outcome;
        if (e->answer != NULL
            && (*final_answer = ps_answer_copy(e->answer)) == NULL)
        {
            return -1;
        }
    }

    return 0;
}


int
ps_idem_keep(ps_idem_t *m, const char *key, ps_outcome_e outcome,
    const ps_answer_t *a)
{
    ps_entry_t  *e = ps_idem_find(m, key);

    if (e == NULL) {
        return 0;                       /* forgotten meanwhile: nothing */
    }
    e->answer = a != NULL ? ps_answer_copy(a) : NULL;
    if (a != NULL && e->answer == NULL) {
        return -1;
    }
    e->final = 1;
    e->outcome = outcome;

    return 0;
}


int
ps_idem_note(ps_idem_t *m, const char *key, const char *note, int *differs)
{
    ps_entry_t  *e = ps_idem_find(m, key);

    *differs = 0;
    if (e != NULL) {
        *differs = e->note != NULL && strcmp(e->note, note) != 0;
        return 0;
    }

    e = ps_idem_add(m, key, PS_UNKNOWN);
    if (e == NULL || (e->note = strdup(note)) == NULL) {
        return -1;          /* an entry left without its note (out of
                               memory) never differs */
    }

    return 0;
}
