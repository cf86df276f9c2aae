/* cmd_rules.h - `prmcast rules`: list the shipped risk-flag rules, and try
 * a rule file on deals from the store (or built-in synthetic deals).
 *
 *   prmcast rules list
 *   prmcast rules test FILE... [--deals N] [--as-of DATE]
 */
#ifndef PRM_CMD_RULES_H
#define PRM_CMD_RULES_H

/* argv[0] is "rules". db_path may be NULL ($PRMCAST_DB, else prmcast.db);
 * a store that does not exist is not created. Returns the exit status:
 * 0 ok, 1 a file failed to load or a rule raised, 2 usage. */
int cmd_rules(int argc, char **argv, const char *db_path, int json_out);

#endif
