/* test_jsonscan.c - jsonscan.h's page walker: records flattened to leaf
 * paths, the envelope read after the walk, strict grammar with the byte
 * named, escapes, surrogates, arrays kept as text, non-object records,
 * a stop from the callback, and the nesting limit. */
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "tap.h"

typedef struct got {
    char text[2048];
    long records;
    int stop_at;
} got;

static int on_rec(void *ud, long index, json_kind kind, const json_leaf *l, size_t n)
{
    got *g = ud;
    g->records++;
    size_t o = strlen(g->text);
    o += (size_t)snprintf(g->text + o, sizeof g->text - o, "#%ld(%d)", index, (int)kind);
    for (size_t k = 0; k < n; k++)
        o += (size_t)snprintf(g->text + o, sizeof g->text - o, " %s=%s%s", l[k].path, l[k].v,
                              l[k].bad ? "!" : "");
    o += (size_t)snprintf(g->text + o, sizeof g->text - o, ";");
    if (g->stop_at && index == g->stop_at) return -7;
    return 0;
}

static int walk(json_walker *w, const char *s, const char *items, got *g, prm_error *err)
{
    memset(g->text, 0, sizeof g->text);
    g->records = 0;
    return json_walk(w, s, strlen(s), items, on_rec, g, err);
}

int main(void)
{
    json_walker *w = json_walker_new();
    got g = { .stop_at = 0 };
    prm_error err;
    const char *page =
        "{\"data\": {\"items\": [{\"key\": \"D1\", \"amount\": 4242400, \"archived\": false,"
        " \"field_data\": {\"deal_type\": \"New\", \"x\": null}, \"tags\": [1, {\"a\": 2}]},"
        " {\"key\": \"D\\u00e92\\n\", \"m\": {\"n\": {\"o\": -1.5e3}}}, 7],"
        " \"has_more\": true}, \"status\": 200}";
    T_OK(walk(w, page, "data.items", &g, &err) == 0, "a page walks");
    T_EQ_STR(g.text, "#1(6) key=D1 amount=4242400 archived=false field_data.deal_type=New "
             "field_data.x=null field_data={\"deal_type\": \"New\", \"x\": null} tags=[1, {\"a\": 2}];"
             "#2(6) key=D\xc3\xa9" "2\n m.n.o=-1.5e3 m.n={\"o\": -1.5e3} m={\"n\": {\"o\": -1.5e3}};#3(3);",
             "records flattened: nested paths, nested objects also as text, escapes decoded, "
             "arrays as text, a non-object");
    long n;
    T_OK(json_walk_items(w, &n) == JV_ARRAY && n == 3, "the items are an array of 3");
    const json_leaf *hm = json_walk_get(w, "data.has_more");
    T_OK(hm && hm->kind == JV_TRUE, "the envelope's has_more read after the walk");
    T_OK(json_walk_get(w, "status") && strcmp(json_walk_get(w, "status")->v, "200") == 0,
         "a top-level number");
    T_OK(json_walk_get(w, "data.items.key") == NULL, "records' leaves are not the envelope's");

    T_OK(walk(w, "[{\"a\":1},{\"a\":2}]", "", &g, &err) == 0 && g.records == 2,
         "items \"\": the document is the list");
    T_OK(walk(w, "{\"data\":{\"items\":{\"a\":1}}}", "data.items", &g, &err) == 0 &&
         json_walk_items(w, NULL) == JV_OBJECT && g.records == 0, "an object where the list is");
    T_OK(walk(w, "{\"data\":{\"items\":{}}}", "data.items", &g, &err) == 0 &&
         json_walk_items(w, NULL) == JV_ARRAY, "an empty object reads as an empty list (as cjson)");
    T_OK(walk(w, "{\"data\":{}}", "data.items", &g, &err) == 0 &&
         json_walk_items(w, NULL) == JV_MISSING, "no list at all: missing");

    T_OK(walk(w, "{\"data\":{\"items\":[{\"a\":1},{\"a\":2", "data.items", &g, &err) < 0 &&
         strstr(err.msg, "the text ends at byte"), "truncated text: an error at the end");
    T_OK(walk(w, "<html>busy</html>", "data.items", &g, &err) < 0 &&
         strcmp(err.msg, "unexpected character at byte 1") == 0, "HTML: the byte named");
    T_OK(walk(w, "[1,]", "", &g, &err) < 0, "a trailing comma is not JSON");
    T_OK(walk(w, "[01]", "", &g, &err) < 0, "a leading zero is not JSON");
    T_OK(walk(w, "[1.]", "", &g, &err) < 0, "a bare decimal point is not JSON");
    T_OK(walk(w, "[\"a\tb\"]", "", &g, &err) < 0, "a raw control character in a string");
    T_OK(walk(w, "[\"\\ud800\"]", "", &g, &err) < 0, "an unpaired surrogate");
    T_OK(walk(w, "[{\"k\":\"\\ud83d\\ude00\"}]", "", &g, &err) == 0 &&
         strstr(g.text, "k=\xf0\x9f\x98\x80;"), "a surrogate pair becomes one 4-byte character");
    T_OK(walk(w, "[{\"k\":\"a\\u0000b\"},{\"k\":\"\xff\"}]", "", &g, &err) == 0 &&
         strstr(g.text, "#1(6) k=a!;") && strstr(g.text, "#2(6) k=\xff!;"),
         "an escaped NUL and invalid UTF-8 are marked bad, not dropped");
    T_OK(walk(w, "[1] [2]", "", &g, &err) < 0 && strstr(err.msg, "text after the JSON value"),
         "a second value is not JSON");
    g.stop_at = 2;
    T_OK(walk(w, "[{},{},{}]", "", &g, &err) == -7 && g.records == 2, "the callback stops the walk");
    g.stop_at = 0;
    char deep[2 * JSON_WALK_DEPTH + 8];
    size_t k = 0;
    for (int d = 0; d < JSON_WALK_DEPTH + 1; d++) deep[k++] = '[';
    for (int d = 0; d < JSON_WALK_DEPTH + 1; d++) deep[k++] = ']';
    deep[k] = 0;
    T_OK(walk(w, deep, "x", &g, &err) < 0 && strstr(err.msg, "nested too deep"), "nesting is bounded");
    const char *dotted =
        "{\"data\": {\"items\": [{\"k\": 1, \"f.x\": \"lit\", \"f\": {\"x\": \"nest\"}, \"b\\\\c\": 2}],"
        " \"has_more\": true}, \"data.has_more\": false, \"data.items\": [{\"k\": 9}]}";
    T_OK(walk(w, dotted, "data.items", &g, &err) == 0 && g.records == 1, "a literal key \"data.items\" is not the records");
    T_OK(json_walk_get(w, "data.has_more") && json_walk_get(w, "data.has_more")->kind == JV_TRUE,
         "a literal key \"data.has_more\" does not override the nested one");
    T_OK(json_walk_get(w, "data\\.has_more") && json_walk_get(w, "data\\.has_more")->kind == JV_FALSE,
         "the literal key is kept, its '.' escaped");
    T_EQ_STR(g.text, "#1(6) k=1 f\\.x=lit f.x=nest f={\"x\": \"nest\"} b\\\\c=2;",
             "a record's dotted and backslashed keys are escaped, nested paths are not");
    T_OK(walk(w, "[{\"a\":1,\"a\":2}]", "", &g, &err) == 0 && strcmp(g.text, "#1(6) a=1 a=2;") == 0,
         "a record's repeated key keeps both leaves (readers take the last, as cjson)");
    T_OK(walk(w, "{\"a\":1,\"a\":2}", "x", &g, &err) < 0 && strstr(err.msg, "repeated key 'a' in the page's envelope"),
         "a repeated envelope key refuses the page");
    T_OK(walk(w, "{\"data\":{\"items\":[{\"k\":1}],\"items\":[{\"k\":2}]}}", "data.items", &g, &err) < 0 &&
         strstr(err.msg, "repeated key 'items'"), "a repeated records array refuses the page (cjson would read the last)");
    T_OK(walk(w, "{\"data\":{\"items\":[{\"k\":1}]},\"data\":{\"has_more\":true}}", "data.items", &g, &err) < 0 &&
         strstr(err.msg, "repeated key 'data'"), "a repeated envelope object refuses the page");
    T_OK(walk(w, "{\"d\":[{\"a\":{\"x\":1},\"a\":{\"x\":2}}]}", "d", &g, &err) == 0 && g.records == 1,
         "inside a record repeated objects are the readers' (not the envelope's) concern");
    /* json_walk_keep: one walk, records reported afterwards. */
    const char *kp = "{\"d\":[{\"key\":\"A\",\"o\":{}},5,{}, {\"key\":\"B\"}],\"more\":true}";
    T_OK(json_walk_keep(w, kp, strlen(kp), "d", &err) == 0, "a kept walk");
    memset(g.text, 0, sizeof g.text);
    g.records = 0;
    T_OK(json_walk_records(w, on_rec, &g) == 0 && g.records == 4, "its records replayed");
    T_EQ_STR(g.text, "#1(6) key=A o={};#2(3);#3(6);#4(6) key=B;", "as json_walk reports them");
    memset(g.text, 0, sizeof g.text);
    T_OK(json_walk_last(w, on_rec, &g, &err) == 0, "json_walk_last after a kept walk");
    T_EQ_STR(g.text, "#4(6) key=B;", "the last kept record");
    T_OK(json_walk_get(w, "more") && json_walk_get(w, "more")->kind == JV_TRUE, "the envelope of a kept walk");
    g.stop_at = 2;
    T_OK(json_walk_records(w, on_rec, &g) == -7, "the callback stops the replay");
    g.stop_at = 0;
    T_OK(json_walk_keep(w, "{\"d\":[{\"key\":\"A\"},{\"k", 20, "d", &err) < 0, "a kept walk refuses truncated text");
    g.records = 0;
    T_OK(json_walk_records(w, on_rec, &g) == 0 && g.records == 0, "and reports none of its records");
    memset(g.text, 0, sizeof g.text);
    g.records = 0;
    const char *two = "{\"d\":[{\"key\":\"A\"},{\"key\":\"B\",\"n\":{\"x\":1}}],\"more\":false}";
    T_OK(json_walk(w, two, strlen(two), "d", NULL, NULL, &err) == 0 && g.records == 0 &&
         json_walk_last(w, on_rec, &g, &err) == 0, "records only checked, then the last one read");
    T_EQ_STR(g.text, "#2(6) key=B n.x=1 n={\"x\":1};", "json_walk_last: the last record's leaves and index");
    T_OK(json_walk_get(w, "more") && json_walk_get(w, "more")->kind == JV_FALSE,
         "the envelope after a checking walk");
    T_OK(json_walk(w, "{\"d\":[{\"a\":1},{\"a\":", 20, "d", NULL, NULL, &err) < 0,
         "a checking walk still refuses truncated text");
    json_walker_free(w);
    return t_done();
}
