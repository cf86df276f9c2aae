"""Peer for bench/ingest.sh: pandas read_csv + to_sql of the same export
into SQLite (Debian python3-pandas). Prints seconds and row counts."""
import sqlite3
import sys
import time

import pandas as pd

FILES = ["partners", "deals", "deal_history", "commits", "quotas", "transactions",
         "payouts", "signals", "fx_rates"]


def main(export_dir, db_path):
    con = sqlite3.connect(db_path)
    t0 = time.perf_counter()
    rows = 0
    for name in FILES:
        df = pd.read_csv(f"{export_dir}/{name}.csv")
        df.to_sql(name, con, if_exists="replace", index=False, chunksize=100000)
        rows += len(df)
    con.commit()
    dt = time.perf_counter() - t0
    deals = con.execute("SELECT count(*) FROM deals").fetchone()[0]
    con.close()
    print(f"pandas_seconds={dt:.2f} pandas_rows={rows} pandas_deals={deals}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
