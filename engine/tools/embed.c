/* embed.c - build tool: compiles engine/lib/prm/*.lua into C arrays, so the
 * engine's own Lua library lives inside the binary (sysbench lua/internal).
 *
 *   embed FILE.lua... > build/gen/embedded_lua.h
 *
 * Each file becomes a byte array (no escaping pitfalls) and an entry
 * { "prm.<name>", bytes } in the table `lualib`, in argument order.
 */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) {
            fprintf(stderr, "embed: cannot open %s\n", argv[i]);
            return 1;
        }
        printf("static const char lualib_%d[] = {", i);
        int c, n = 0;
        while ((c = fgetc(f)) != EOF) printf("%s%d,", n++ % 24 ? "" : "\n", c);
        printf("0 };\n");
        fclose(f);
    }
    printf("static const struct { const char *name; const char *src; } lualib[] = {\n");
    for (int i = 1; i < argc; i++) {
        const char *base = strrchr(argv[i], '/');
        base = base ? base + 1 : argv[i];
        printf("    { \"prm.%.*s\", lualib_%d },\n", (int)(strcspn(base, ".")), base, i);
    }
    printf("    { 0, 0 }\n};\n");
    return 0;
}
