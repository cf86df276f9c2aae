/* test_json.c - json.h: escaping, UTF-8 repair, nesting and separators,
 * empty arrays and objects, non-finite numbers. */
#include <math.h>
#include <string.h>

#include "json.h"
#include "tap.h"

int main(void)
{
    json j;
    json_init(&j);
    json_obj(&j);
    json_key(&j, "s");
    json_str(&j, "a \"quote\", a \\ back\nslash\t\x01 and \x1b[31m");
    json_key(&j, "n");
    json_num(&j, 0.5);
    json_key(&j, "i");
    json_int(&j, -42);
    json_key(&j, "nan");
    json_num(&j, NAN);
    json_key(&j, "empty_list");
    json_arr(&j);
    json_end(&j);
    json_key(&j, "empty_obj");
    json_obj(&j);
    json_end(&j);
    json_key(&j, "list");
    json_arr(&j);
    json_int(&j, 1);
    json_str(&j, ":{}");
    json_null(&j);
    json_bool(&j, 1);
    json_end(&j);
    json_end(&j);
    T_EQ_STR(json_cstr(&j),
             "{\"s\":\"a \\\"quote\\\", a \\\\ back\\nslash\\t\\u0001 and \\u001b[31m\",\"n\":0.5,\"i\":-42,"
             "\"nan\":null,\"empty_list\":[],\"empty_obj\":{},\"list\":[1,\":{}\",null,true]}",
             "escaping, separators, empty containers, null for NaN, ':{}' inside a string untouched");
    json_reset(&j);
    json_str(&j, "ok \xc3\xa9 bad \xff\xfe end \xe2\x82");
    T_EQ_STR(json_cstr(&j), "\"ok \xc3\xa9 bad \xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd\xef\xbf\xbd\"",
             "valid UTF-8 kept, invalid bytes become U+FFFD (output is valid UTF-8)");
    size_t bad;
    T_OK(utf8_valid("h\xc3\xa9", 3, &bad), "utf8_valid accepts a 2-byte sequence");
    T_OK(!utf8_valid("h\xc0\xaf", 3, &bad) && bad == 1, "overlong forms are invalid, offset named");
    T_OK(!utf8_valid("\xed\xa0\x80", 3, &bad), "surrogates are invalid");
    T_OK(!utf8_valid("abcdefghijklmnopq\xc3(xyzxyzxyz", 27, &bad) && bad == 17,
         "past a run of ASCII read 8 bytes at a time, the bad offset is exact");
    T_OK(utf8_valid("abcdefghijklmnop\xc3\xa9" "abcdefgh", 26, &bad), "ASCII runs around a sequence");
    json_reset(&j);
    json_strn(&j, "a\0b", 3);
    T_EQ_STR(json_cstr(&j), "\"a\\u0000b\"", "a NUL inside a counted string is escaped, not a cut");
    json_reset(&j);
    for (int k = 0; k < JSON_MAX_DEPTH + 2; k++) json_arr(&j);
    T_OK(json_failed(&j), "nesting past the limit fails loudly");
    json_free(&j);
    char out[8];
    size_t need = json_escape("abc\"def", out, sizeof out);
    T_OK(need == 8 && strlen(out) == 7, "json_escape reports the length it needs and truncates safely");
    return t_done();
}
