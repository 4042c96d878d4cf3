// Incremental parse of a Kubernetes list response: each element of the
// top-level `items` array is JSON.parse'd on its own as soon as its last byte
// arrives, so a caller that keeps only a slim copy of each element never holds
// a whole page of full objects. A page parsed at once keeps every object alive
// until the last one is read, long enough for V8 to promote them all to the old
// generation, which then stays resident; one element at a time dies young.
//
// The scanner only finds element boundaries (it tracks strings, escapes and
// bracket depth, nothing of JSON's grammar): validity comes from JSON.parse,
// applied to every element and, at the end, to the rest of the document with
// each element replaced by `0`. Both parse iff the whole document does.
// Structural bytes are ASCII and never occur inside a UTF-8 multi-byte
// sequence, so chunks may be split anywhere.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const COMMA = 0x2c;
const COLON = 0x3a;
const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/**
 * Elements are parsed together up to about this much JSON: one JSON.parse per
 * element is most of the cost for small objects in a process that has just
 * started, and the bound keeps what is alive at once small whatever the
 * elements' size (large ones are parsed one by one).
 */
const BATCH_BYTES = 8 * 1024;

const PLACEHOLDER = Buffer.from('0');
const SEPARATOR = Buffer.from(',');
const CLOSE = Buffer.from(']');

export interface SplitResult {
  /**
   * The parsed document. When `streamed`, its `items` holds a placeholder per
   * element handed to onItem (so its length is their count); otherwise the
   * document had no top-level `items` array the scanner recognised (not an
   * object, no such key, a key spelt with escapes) and it is parsed whole.
   */
  doc: unknown;
  streamed: boolean;
}

export class ListItemSplitter {
  private depth = 0;
  private started = false;
  private topIsObject = false;
  private inString = false;
  private escaped = false;
  /** Text of the depth-1 string being read while it may still be a key ("items"); null when not tracked. */
  private key: string | null = null;
  private lastKeyIsItems = false;
  private pendingItems = false;
  private inItems = false;
  private streamed = false;
  private inItem = false;
  private itemParts: Buffer[] = [];
  private itemCount = 0;
  private readonly skeleton: Buffer[] = [];
  private failed?: Error;

  /**
   * onItem receives each element in order. Elements handed out are only
   * valid once end() has returned: a document found malformed later throws
   * there, and the caller must then discard them.
   */
  constructor(private readonly onItem: (item: unknown, index: number) => void) {}

  write(chunk: Buffer): void {
    if (this.failed) throw this.failed;
    try {
      this.scan(chunk);
    } catch (e) {
      this.failed = e instanceof Error ? e : new Error(String(e));
      throw this.failed;
    }
  }

  end(): SplitResult {
    if (this.failed) throw this.failed;
    if (this.inString || this.depth !== 0 || this.inItems) throw new Error('JSON document ends early (unclosed string, object or array)');
    const text = Buffer.concat(this.skeleton).toString('utf8');
    return { doc: JSON.parse(text), streamed: this.streamed };
  }

  private scan(chunk: Buffer): void {
    const n = chunk.length;
    let i = 0;
    // Start of the current run of bytes that belong to the skeleton; -1 inside the streamed array.
    let outStart = this.inItems ? -1 : 0;
    let itemStart = this.inItem ? 0 : -1;
    // Consecutive elements that begin and end in this chunk, parsed together.
    let batchStart = -1;
    let batchEnd = -1;
    let batchCount = 0;
    // Next backslash at or after i (-2: not looked up yet, -1: none in this chunk).
    let backslash = -2;
    while (i < n) {
      if (this.inItems && this.depth > 2 && !this.inString) {
        // Inside an element only strings and brackets matter, and nearly all
        // the bytes are there: a tight loop on locals, strings skipped natively.
        let depth = this.depth;
        while (i < n) {
          const b = chunk[i]!;
          if (b === QUOTE) {
            let q = chunk.indexOf(QUOTE, i + 1);
            while (q !== -1 && chunk[q - 1] === BACKSLASH) {
              let run = 1;
              while (q - 1 - run > i && chunk[q - 1 - run] === BACKSLASH) run++;
              if (run % 2 === 0) break;
              q = chunk.indexOf(QUOTE, q + 1);
            }
            if (q === -1) {
              // The string goes on in the next chunk: the general path carries it over.
              this.inString = true;
              this.key = null;
              i++;
              break;
            }
            i = q + 1;
            continue;
          }
          if (b === LBRACE || b === LBRACKET) depth++;
          else if (b === RBRACE || b === RBRACKET) {
            if (--depth === 2) {
              i++;
              break;
            }
          }
          i++;
        }
        this.depth = depth;
        continue;
      }
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false;
          i++;
          continue;
        }
        if (backslash !== -1 && backslash < i) backslash = chunk.indexOf(BACKSLASH, i);
        const quote = chunk.indexOf(QUOTE, i);
        if (backslash !== -1 && (quote === -1 || backslash < quote)) {
          this.key = null; // an escaped key is never taken for "items": the whole document is parsed instead
          this.escaped = true;
          i = backslash + 1;
          continue;
        }
        const end = quote === -1 ? n : quote;
        if (this.key !== null && this.key.length <= 5) this.key += chunk.toString('latin1', i, Math.min(end, i + 6));
        if (quote === -1) break;
        this.inString = false;
        if (this.key !== null) this.lastKeyIsItems = this.key === 'items';
        i = quote + 1;
        continue;
      }
      const c = chunk[i]!;
      if (this.inItems && this.depth === 2) {
        if (c === COMMA || c === RBRACKET) {
          if (this.inItem) {
            if (this.itemParts.length > 0) this.emitSpanning(chunk.subarray(0, i));
            else {
              if (batchStart < 0) batchStart = itemStart;
              batchEnd = i;
              batchCount++;
              if (batchEnd - batchStart >= BATCH_BYTES) {
                this.emitBatch(chunk.toString('utf8', batchStart, batchEnd), batchCount);
                batchStart = -1;
                batchCount = 0;
              }
            }
            this.inItem = false;
          }
          itemStart = -1;
          if (c === COMMA) this.skeleton.push(SEPARATOR);
          else {
            this.skeleton.push(CLOSE);
            this.inItems = false;
            this.depth = 1;
            outStart = i + 1;
          }
          i++;
          continue;
        }
        if (isSpace(c)) {
          i++;
          continue;
        }
        if (!this.inItem) {
          this.inItem = true;
          itemStart = i;
          this.skeleton.push(PLACEHOLDER);
        }
      }
      if (isSpace(c)) {
        i++;
        continue;
      }
      if (!this.started) {
        this.started = true;
        this.topIsObject = c === LBRACE;
      }
      if (this.pendingItems) {
        this.pendingItems = false;
        if (c === LBRACKET) {
          if (this.streamed) throw new Error('JSON document has more than one "items" key');
          this.skeleton.push(Buffer.from(chunk.subarray(outStart, i + 1)));
          outStart = -1;
          this.inItems = true;
          this.streamed = true;
          this.depth = 2;
          i++;
          continue;
        }
      }
      const keyWasItems = this.lastKeyIsItems;
      this.lastKeyIsItems = false;
      switch (c) {
        case QUOTE:
          this.inString = true;
          this.key = this.depth === 1 && this.topIsObject && !this.inItems ? '' : null;
          break;
        case LBRACE:
        case LBRACKET:
          this.depth++;
          break;
        case RBRACE:
        case RBRACKET:
          if (--this.depth < 0) throw new Error(`JSON document has an unbalanced '${String.fromCharCode(c)}'`);
          break;
        case COLON:
          if (this.depth === 1 && keyWasItems) this.pendingItems = true;
          break;
      }
      i++;
    }
    if (batchCount > 0) this.emitBatch(chunk.toString('utf8', batchStart, batchEnd), batchCount);
    if (this.inItem) this.itemParts.push(chunk.subarray(itemStart));
    if (outStart >= 0 && outStart < n) this.skeleton.push(Buffer.from(chunk.subarray(outStart)));
  }

  /** Consecutive elements of one chunk, with the commas and spaces between them, parsed as one array. */
  private emitBatch(text: string, count: number): void {
    const first = this.itemCount;
    let items: unknown[];
    try {
      items = JSON.parse(`[${text}]`) as unknown[];
    } catch (e) {
      throw new Error(count > 1 ? `items[${first}..${first + count - 1}] are not JSON: ${(e as Error).message}` : `items[${first}] is not JSON: ${(e as Error).message}`);
    }
    // Separators were checked by the scanner: `count` elements, or JSON.parse would have failed.
    for (const item of items) this.onItem(item, this.itemCount++);
  }

  /** An element split across chunks. */
  private emitSpanning(last: Buffer): void {
    const text = Buffer.concat([...this.itemParts, last]).toString('utf8');
    this.itemParts = [];
    const index = this.itemCount++;
    let item: unknown;
    try {
      item = JSON.parse(text);
    } catch (e) {
      throw new Error(`items[${index}] is not JSON: ${(e as Error).message}`);
    }
    this.onItem(item, index);
  }
}
