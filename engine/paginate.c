/* paginate.c - see paginate.h. */
#include "paginate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct paginator {
    pg_spec spec;
    long pages;                 /* pages advanced */
    long offset;                /* PG_OFFSET: next skip; PG_PAGE: next page */
    char *value;                /* PG_CURSOR: last key; PG_LINK/PG_NEXT_URL: next URL */
    int finished;
    char num[2][32];            /* query values handed out by pg_next */
    char *state;
};

static const char *or(const char *s, const char *d) { return s && *s ? s : d; }

/* The state string: "<pages> <offset> <value>" (value may contain spaces). */
static int parse_state(paginator *p, const char *s, prm_error *err)
{
    int used = 0;
    long pages, off;
    if (sscanf(s, "%ld %ld %n", &pages, &off, &used) < 2 || pages < 0 || off < 0)
        return prm_error_set(err, "not a paginator state: %.60s", s);
    p->pages = pages;
    p->offset = off;
    if (s[used]) {
        p->value = strdup(s + used);
        if (!p->value) return prm_error_set(err, "out of memory");
    }
    /* A state is saved after a page that said there was more, or never. */
    return 0;
}

int pg_new(const pg_spec *spec, const char *resume, paginator **out, prm_error *err)
{
    paginator *p = calloc(1, sizeof *p);
    if (!p) return prm_error_set(err, "out of memory");
    p->spec = *spec;
    if (p->spec.first_page <= 0) p->spec.first_page = 1;
    p->offset = spec->kind == PG_PAGE ? p->spec.first_page : 0;
    if (resume && *resume && parse_state(p, resume, err) < 0) {
        pg_free(p);
        return -1;
    }
    *out = p;
    return 0;
}

void pg_free(paginator *p)
{
    if (!p) return;
    free(p->value);
    free(p->state);
    free(p);
}

int pg_has_next(const paginator *p) { return !p->finished; }
long pg_pages(const paginator *p) { return p->pages; }

void pg_next(paginator *p, const char **path_override, const char *q[9])
{
    int n = 0;
    const pg_spec *s = &p->spec;
    *path_override = NULL;
    if (s->limit > 0 && (s->kind == PG_CURSOR || s->kind == PG_OFFSET || s->kind == PG_PAGE ||
                         (s->kind == PG_LINK && p->pages == 0) || (s->kind == PG_NONE))) {
        snprintf(p->num[0], sizeof p->num[0], "%ld", s->limit);
        q[n++] = or(s->limit_param, s->kind == PG_OFFSET ? "take" :
                                    s->kind == PG_PAGE ? "per_page" : "limit");
        q[n++] = p->num[0];
    }
    switch (s->kind) {
    case PG_CURSOR:
        if (p->value) {
            q[n++] = or(s->cursor_param, "starting_after");
            q[n++] = p->value;
        }
        break;
    case PG_OFFSET:
        snprintf(p->num[1], sizeof p->num[1], "%ld", p->offset);
        q[n++] = or(s->offset_param, "skip");
        q[n++] = p->num[1];
        break;
    case PG_PAGE:
        snprintf(p->num[1], sizeof p->num[1], "%ld", p->offset);
        q[n++] = or(s->page_param, "page");
        q[n++] = p->num[1];
        break;
    case PG_LINK:
    case PG_NEXT_URL:
        if (p->value) {
            *path_override = p->value;
            n = 0;                    /* the next URL carries its own query */
        }
        break;
    case PG_NONE:
        break;
    }
    q[n] = NULL;
}

static int set_value(paginator *p, const char *v, prm_error *err)
{
    char *c = strdup(v);
    if (!c) return prm_error_set(err, "out of memory");
    free(p->value);
    p->value = c;
    return 0;
}

int pg_advance(paginator *p, const pg_facts *f, prm_error *err)
{
    const pg_spec *s = &p->spec;
    if (f->nitems < 0) return prm_error_set(err, "no list of items");
    switch (s->kind) {
    case PG_NONE:
        p->finished = 1;
        break;
    case PG_CURSOR:
        if (f->has_more < 0) return prm_error_set(err, "'has_more' is missing or not a boolean");
        if (f->has_more && f->nitems == 0)
            return prm_error_set(err, "has_more is true on an empty page");
        if (f->has_more) {
            if (!f->last_key || !*f->last_key)
                return prm_error_set(err, "the last item has no string key to continue after");
            if (set_value(p, f->last_key, err) < 0) return -1;
        } else {
            p->finished = 1;
        }
        break;
    case PG_OFFSET:
        if (f->total < 0) return prm_error_set(err, "the total count is missing or not a number");
        p->offset += f->nitems;
        if (f->nitems == 0 || p->offset >= f->total) p->finished = 1;
        break;
    case PG_PAGE:
        p->offset++;
        if (f->nitems == 0 || (s->limit > 0 && f->nitems < s->limit)) p->finished = 1;
        break;
    case PG_LINK:
    case PG_NEXT_URL:
        if (s->kind == PG_NEXT_URL && f->done < 0)
            return prm_error_set(err, "'done' is missing or not a boolean");
        if ((s->kind == PG_NEXT_URL && f->done) || !f->next_url || !*f->next_url) {
            if (s->kind == PG_NEXT_URL && !f->done)
                return prm_error_set(err, "done is false but there is no next URL");
            p->finished = 1;
        } else if (set_value(p, f->next_url, err) < 0) {
            return -1;
        }
        break;
    }
    p->pages++;
    return 0;
}

const char *pg_state(const paginator *p)
{
    paginator *m = (paginator *)p;
    size_t n = (p->value ? strlen(p->value) : 0) + 64;
    char *s = malloc(n);
    if (!s) return NULL;
    snprintf(s, n, "%ld %ld %s", p->pages, p->offset, p->value ? p->value : "");
    size_t l = strlen(s);
    while (l && s[l - 1] == ' ') s[--l] = 0;
    free(m->state);
    m->state = s;
    return s;
}
