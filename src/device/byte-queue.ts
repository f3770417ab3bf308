/**
 * A queue of received chunks that hands out exact byte counts without re-concatenating on every
 * chunk (frames may arrive split at any byte boundary or several in one chunk).
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  /** Bytes currently queued. */
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Reads `n` bytes at `offset` without consuming (n ≤ 8 is cheap); undefined when not enough. */
  peek(n: number, offset = 0): Buffer | undefined {
    if (this.length < offset + n) return undefined;
    const out = Buffer.allocUnsafe(n);
    let skip = this.head + offset;
    let written = 0;
    for (const c of this.chunks) {
      if (skip >= c.length) {
        skip -= c.length;
        continue;
      }
      const take = Math.min(c.length - skip, n - written);
      c.copy(out, written, skip, skip + take);
      written += take;
      skip = 0;
      if (written === n) break;
    }
    return out;
  }

  /** Removes and returns exactly `n` bytes; the caller checks {@link length} first. */
  take(n: number): Buffer {
    if (n > this.length) throw new RangeError(`take(${n}) with ${this.length} bytes queued`);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      this.length -= n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const c = this.chunks[0];
      if (c === undefined) break;
      const take = Math.min(c.length - this.head, n - written);
      c.copy(out, written, this.head, this.head + take);
      written += take;
      this.head += take;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.length -= n;
    return out;
  }

  /** Removes and returns everything queued. */
  drain(): Buffer {
    return this.take(this.length);
  }
}
