# embed.awk - compiles engine/lib/prm/*.lua into C string literals, so the
# engine's own Lua library lives inside the binary (sysbench lua/internal).
# Output: one `static const char` array per file and a table of
# { "prm.<name>", source, length } entries, sorted by file name.
function flush() {
    if (name == "") return
    printf "\";\n"
    names[n++] = name
}
FNR == 1 {
    flush()
    name = FILENAME
    sub(/.*\//, "", name); sub(/\.lua$/, "", name)
    printf "static const char lualib_%s[] =\n\"", name
}
{
    line = $0
    gsub(/\\/, "\\\\", line)
    gsub(/"/, "\\\"", line)
    gsub(/\t/, "\\t", line)
    printf "%s\\n\"\n\"", line
}
END {
    flush()
    printf "static const struct { const char *name; const char *src; } lualib[] = {\n"
    for (i = 0; i < n; i++)
        printf "    { \"prm.%s\", lualib_%s },\n", names[i], names[i]
    printf "    { 0, 0 }\n};\n"
}
