/** Counts stored states straight from the server's SQLite file (read-only; WAL lets it read alongside). */
import Database from 'better-sqlite3';

export class StateCounter {
  private readonly db: Database.Database;
  private readonly stmt: Database.Statement<[], { n: number }>;

  constructor(file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true });
    this.stmt = this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM device_states');
  }

  count(): number {
    return this.stmt.get()?.n ?? 0;
  }

  /**
   * Polls until `target` rows exist, the deadline passes, or the count stops moving for `stallMs`.
   * Returns the count and when it last grew.
   */
  async waitFor(target: number, deadline: number, stallMs = 10_000): Promise<{ count: number; lastGrowth: number }> {
    let count = this.count();
    let lastGrowth = performance.now();
    let lastMove = Date.now();
    while (count < target && Date.now() < deadline && Date.now() - lastMove < stallMs) {
      await new Promise((r) => setTimeout(r, 20));
      const now = this.count();
      if (now !== count) {
        count = now;
        lastGrowth = performance.now();
        lastMove = Date.now();
      }
    }
    return { count, lastGrowth };
  }

  close(): void {
    this.db.close();
  }
}
