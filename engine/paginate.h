/* paginate.h - the paginators a connector picks from. Pure state: what a
 * decoded page said (its facts) goes in, the next request's query and a
 * resumable state string come out; no I/O, no JSON (the Lua side decodes
 * bodies with cjson and hands over the facts).
 */
#ifndef PRM_PAGINATE_H
#define PRM_PAGINATE_H

#include "error.h"

/* The connector picks one; the paginator turns what a page said (the
 * facts the Lua side found in the decoded body) into the next request, and
 * its state into a string a sync stores to resume after a crash. */
typedef enum {
    PG_NONE,         /* one request */
    PG_CURSOR,       /* ?starting_after=<last item key>&limit=N while has_more */
    PG_OFFSET,       /* ?skip=K&take=N while skip < count */
    PG_PAGE,         /* ?page=P&per_page=N while the page is full */
    PG_LINK,         /* Link: <url>; rel="next" */
    PG_NEXT_URL      /* body's nextRecordsUrl while !done */
} pg_kind;

typedef struct pg_spec {
    pg_kind kind;
    long limit;                       /* page size; 0: the API's default */
    const char *limit_param;          /* "limit" / "take" / "per_page" */
    const char *cursor_param;         /* "starting_after" */
    const char *offset_param;         /* "skip" */
    const char *page_param;           /* "page" */
    long first_page;                  /* 1 */
} pg_spec;

/* What one decoded page said; -1 / NULL where the body had nothing. */
typedef struct pg_facts {
    long nitems;
    int has_more;                     /* PG_CURSOR */
    const char *last_key;             /* PG_CURSOR */
    long total;                       /* PG_OFFSET */
    int done;                         /* PG_NEXT_URL */
    const char *next_url;             /* PG_NEXT_URL; PG_LINK from the header */
} pg_facts;

typedef struct paginator paginator;

/* `resume` is a state string from pg_state (NULL: from the start). */
int pg_new(const pg_spec *spec, const char *resume, paginator **out, prm_error *err);
void pg_free(paginator *p);
/* 1 when there is another page to fetch, 0 when finished. */
int pg_has_next(const paginator *p);
/* The next request: *path_override is an absolute or relative URL to use
 * instead of the object's path (NULL: keep it); query gets up to 4
 * name/value pairs (8 pointers + NULL), valid until pg_advance. */
void pg_next(paginator *p, const char **path_override, const char *query[9]);
/* Takes a page's facts; a fact the paginator needs but the page lacks is
 * an error naming it (a malformed page). */
int pg_advance(paginator *p, const pg_facts *f, prm_error *err);
/* The state after the last advanced page, for resuming. */
const char *pg_state(const paginator *p);
long pg_pages(const paginator *p);

#endif
