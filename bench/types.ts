/** One printed figure of `npm run bench`. `target` is the goal in words; `ok` whether it holds. */
export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  target?: string;
  ok?: boolean;
}

/** A bench group: a module under bench/ exporting `run`. */
export type BenchGroup = () => Promise<BenchResult[]>;
