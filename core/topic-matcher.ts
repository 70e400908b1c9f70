/**
 * Topic matching: `TopicMatcher<V>` stores (pattern, value) pairs and answers `match(topic)` with a
 * token trie, so the cost of a match depends on the topic and on the patterns that agree with it,
 * never on how many other subscriptions exist. Wildcard-free patterns skip the trie: one Map lookup.
 *
 * Grammar (NATS-style subjects; details and examples in docs/topics.md):
 * ```
 *   topic   = token *( "." token )
 *   pattern = ptoken *( "." ptoken ) [ "." ">" ]  |  ">"
 *   ptoken  = token | "*"
 *   token   = 1*char   ; any code point except ".", "*", ">", whitespace (JS `\s`),
 *                      ; control characters (Unicode Cc) and lone surrogates
 * ```
 * `*` matches exactly one token; a final `>` matches one or more tokens (`a.>` matches `a.b` and
 * `a.b.c`, not `a`). Every other token is literal and compared by exact string equality (no case or
 * Unicode normalisation).
 *
 * Complexity: `match(topic)` costs O(|topic| + N + R), where N is the number of trie nodes visited,
 * i.e. distinct wildcard-pattern prefixes that match a prefix of the topic (at most 2^L for a topic
 * of L tokens, a bound only patterns with `*` at every depth approach), and R is the number of
 * values returned. A subscription whose pattern leaves the topic at token k costs at most k steps,
 * shared with every pattern of that prefix; one that leaves it at the first token costs nothing.
 * Each step is one integer Map lookup (children are keyed by a token hash, confirmed by a string
 * compare on a hit). `add`/`remove` cost O(|pattern|). Memory is O(distinct exact patterns + trie
 * nodes of distinct wildcard patterns + pairs); `remove` prunes nodes left empty, so churn does not
 * grow memory.
 */
import { ErrorCode, show, WeftError } from './errors.js';

/** Whether a string was checked as a pattern (`add`, `remove`, `matchesPattern`) or a topic (`match`). */
export type PatternKind = 'pattern' | 'topic';

/**
 * A malformed pattern or topic: empty, an empty token (`a..b`, leading or trailing dot), a wildcard
 * that is not a whole token (`a*`), `>` before the last token, a wildcard in a topic, whitespace,
 * a control character or a lone surrogate. The message quotes the input and says what is wrong where.
 */
export class PatternError extends WeftError {
  /** `'pattern'` or `'topic'`: which grammar `input` was checked against. */
  readonly kind: PatternKind;
  /** The offending pattern or topic, as given (not necessarily a string when called from JS). */
  readonly input: unknown;
  constructor(kind: PatternKind, input: unknown, reason: string) {
    super(ErrorCode.PATTERN, `invalid ${kind} ${quote(input)}: ${reason}`);
    this.name = 'PatternError';
    this.kind = kind;
    this.input = input;
  }
}

const DOT = 0x2e;
const STAR = 0x2a;
const GT = 0x3e;
const MAX_QUOTED = 200;
const NO_BLANKS = 'tokens cannot contain whitespace or control characters';

function quote(input: unknown): string {
  if (typeof input !== 'string') return show(input);
  if (input.length <= MAX_QUOTED) return JSON.stringify(input);
  return `${JSON.stringify(input.slice(0, MAX_QUOTED))}... (${input.length} chars)`;
}

function codePoint(c: number): string {
  return `U+${c.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** Non-ASCII code units a token may not contain: C1 controls and the non-ASCII members of JS `\s`. */
function isBannedNonAscii(c: number): boolean {
  return (
    c <= 0x9f ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

function tokenAt(s: string, start: number): string {
  const end = s.indexOf('.', start);
  return s.slice(start, end === -1 ? s.length : end);
}

/**
 * One pass over `input`: returns a reason string when it is malformed, otherwise whether it holds a
 * wildcard token. Patterns are checked here; topics only when `TOPIC` rejected them, for the reason.
 */
function scan(input: unknown, kind: PatternKind): string | boolean {
  if (typeof input !== 'string') return `a ${kind} must be a string, got ${typeof input}`;
  const n = input.length;
  if (n === 0) return `it is empty; a ${kind} has at least one token`;
  let tokenStart = 0;
  let wildcard = false;
  for (let i = 0; i < n; i++) {
    const c = input.charCodeAt(i);
    if (c === DOT) {
      if (i === tokenStart) {
        return i === 0 ? 'it starts with "."' : `empty token at offset ${i} (".." is not allowed)`;
      }
      tokenStart = i + 1;
    } else if (c === STAR || c === GT) {
      const ch = c === STAR ? '*' : '>';
      if (kind === 'topic') {
        return `'${ch}' at offset ${i}: a topic cannot contain wildcards ('*' and '>' are reserved)`;
      }
      const whole = i === tokenStart && (i + 1 === n || input.charCodeAt(i + 1) === DOT);
      if (!whole) {
        const token = JSON.stringify(tokenAt(input, tokenStart));
        return `'${ch}' at offset ${i} is part of the token ${token}; a wildcard must be a whole token`;
      }
      if (c === GT && i + 1 !== n) {
        return `'>' at offset ${i} is not the last token; '>' may only end a pattern`;
      }
      wildcard = true;
    } else if (c <= 0x20 || c === 0x7f) {
      const what = c === 0x20 || (c >= 0x09 && c <= 0x0d) ? 'whitespace' : 'control character';
      return `${what} ${codePoint(c)} at offset ${i}; ${NO_BLANKS}`;
    } else if (c >= 0x80) {
      if (isBannedNonAscii(c)) {
        const what = c <= 0x9f ? 'control character' : 'whitespace';
        return `${what} ${codePoint(c)} at offset ${i}; ${NO_BLANKS}`;
      }
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < n ? input.charCodeAt(i + 1) : 0;
        if (c >= 0xdc00 || next < 0xdc00 || next > 0xdfff) {
          return `lone surrogate ${codePoint(c)} at offset ${i}; a ${kind} must be well-formed UTF-16`;
        }
        i++;
      }
    }
  }
  if (tokenStart === n) return 'it ends with "."';
  return wildcard;
}

/**
 * The topic grammar as one regular expression, linear because the token class excludes "." (no
 * backtracking). V8 runs it about twice as fast as `scan`, which is only asked to explain a rejection.
 * `\p{Cs}` matches only lone surrogates under the `u` flag. The tests check both against a reference.
 */
const TOPIC = /^[^\s\p{Cc}\p{Cs}.*>]+(?:\.[^\s\p{Cc}\p{Cs}.*>]+)*$/u;

function checkTopic(topic: unknown): void {
  if (typeof topic === 'string' && TOPIC.test(topic)) return;
  const reason = scan(topic, 'topic');
  throw new PatternError(
    'topic',
    topic,
    typeof reason === 'string' ? reason : 'it does not match the topic grammar',
  );
}

function check(input: unknown, kind: PatternKind): boolean {
  const result = scan(input, kind);
  if (typeof result === 'string') throw new PatternError(kind, input, result);
  return result;
}

/**
 * Checks a topic (a concrete, wildcard-free subject such as `orders.eu.created`).
 * @throws {PatternError} when `topic` is not a string, is empty, has an empty token, contains `*`
 *   or `>`, whitespace, a control character or a lone surrogate.
 */
export function validateTopic(topic: unknown): asserts topic is string {
  checkTopic(topic);
}

/**
 * Checks a subscription pattern (a topic in which whole tokens may be `*`, and the last may be `>`).
 * @throws {PatternError} when `pattern` is malformed; the message quotes it and names the problem.
 */
export function validatePattern(pattern: unknown): asserts pattern is string {
  check(pattern, 'pattern');
}

/**
 * True when `s` is a well-formed pattern with at least one wildcard token (`*` or `>`); false for
 * an exact topic and for anything malformed. Never throws: call `validatePattern` for the reason.
 */
export function isPattern(s: unknown): boolean {
  return scan(s, 'pattern') === true;
}

/**
 * One-off check of one pattern against one topic, without building a matcher. For many patterns
 * use `TopicMatcher`, whose cost does not grow with the number of patterns.
 * @throws {PatternError} when `pattern` or `topic` is malformed.
 */
export function matchesPattern(pattern: string, topic: string): boolean {
  const wildcard = check(pattern, 'pattern');
  checkTopic(topic);
  if (!wildcard) return pattern === topic;
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    const token = p[i];
    if (token === '>') return t.length > i;
    if (i >= t.length) return false;
    if (token !== '*' && token !== t[i]) return false;
  }
  return p.length === t.length;
}

/**
 * Internal statistics for tests and benchmarks (`matcher[kMatcherStats]()`): not part of the
 * semver-stable API.
 */
export const kMatcherStats = Symbol('weft.TopicMatcher.stats');

export interface MatcherStats {
  /** Trie nodes below the root (one per distinct prefix of the stored wildcard patterns). */
  nodes: number;
  /** Distinct wildcard-free patterns in the exact-match Map. */
  exactPatterns: number;
  /** (pattern, value) pairs stored under wildcard patterns. */
  wildcardPairs: number;
}

/**
 * FNV-1a over the UTF-16 code units of `s[start, end)`, cut to 30 bits so it stays a small integer
 * (a Smi) in V8. Trie children are keyed by it: a probe for a token that is not there (the common
 * case) is one integer Map lookup, with no string sliced, hashed or compared.
 */
function hashToken(s: string, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}

/**
 * A trie node stands for one pattern prefix. `values` holds the values of the pattern that ends
 * here; `rest` those of `<prefix>.>`, which never needs a node of its own because `>` is last.
 * Literal children are keyed by `hashToken`; children whose tokens collide are chained through
 * `sibling`, and every lookup confirms `token` before taking a child.
 */
class TrieNode<V> {
  literal: Map<number, TrieNode<V>> | undefined = undefined;
  star: TrieNode<V> | undefined = undefined;
  values: Set<V> | undefined = undefined;
  rest: Set<V> | undefined = undefined;
  sibling: TrieNode<V> | undefined = undefined;
  /** The literal token this node is keyed by in its parent ('' for the root and `*` children). */
  readonly token: string;

  constructor(token: string) {
    this.token = token;
  }

  isEmpty(): boolean {
    return (
      this.literal === undefined &&
      this.star === undefined &&
      this.values === undefined &&
      this.rest === undefined
    );
  }

  /** The literal child for `token`, if any. */
  child(token: string): TrieNode<V> | undefined {
    let child = this.literal?.get(hashToken(token, 0, token.length));
    while (child !== undefined && child.token !== token) child = child.sibling;
    return child;
  }

  /** The literal child for `token`, created when missing; `created` says which. */
  ensureChild(token: string): { child: TrieNode<V>; created: boolean } {
    const existing = this.child(token);
    if (existing !== undefined) return { child: existing, created: false };
    const h = hashToken(token, 0, token.length);
    this.literal ??= new Map();
    const child = new TrieNode<V>(token);
    child.sibling = this.literal.get(h);
    this.literal.set(h, child);
    return { child, created: true };
  }

  /** Unlinks the literal child `child` (found by `child()`). */
  deleteChild(child: TrieNode<V>): void {
    const literal = this.literal!;
    const h = hashToken(child.token, 0, child.token.length);
    const head = literal.get(h);
    if (head === child) {
      if (child.sibling === undefined) literal.delete(h);
      else literal.set(h, child.sibling);
    } else {
      let prev = head!;
      while (prev.sibling !== child) prev = prev.sibling!;
      prev.sibling = child.sibling;
    }
    if (literal.size === 0) this.literal = undefined;
  }
}

/**
 * The tokens of the topic being matched, found lazily: a token's bounds and hash are computed only
 * when the trie asks for that depth, and at most once per `match` call, so a trie that stops at
 * the first token never scans the rest of the topic. Nothing is allocated.
 */
class TopicTokens {
  topic = '';
  /** Tokens scanned so far; entries at `count` and beyond are stale. */
  #count = 0;
  /** Offset where token `count` starts. */
  #next = 0;
  /** True once the last token was scanned. */
  #done = false;
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  readonly hashes: number[] = [];

  reset(topic: string): void {
    this.topic = topic;
    this.#count = 0;
    this.#next = 0;
    this.#done = false;
  }

  #advance(): void {
    const topic = this.topic;
    const n = topic.length;
    const start = this.#next;
    let h = 0x811c9dc5;
    let i = start;
    for (; i < n; i++) {
      const c = topic.charCodeAt(i);
      if (c === DOT) break;
      h = Math.imul(h ^ c, 0x01000193);
    }
    const k = this.#count++;
    this.starts[k] = start;
    this.ends[k] = i;
    this.hashes[k] = h & 0x3fffffff; // as hashToken
    if (i === n) this.#done = true;
    else this.#next = i + 1;
  }

  /** Whether the topic has a token at index `d` (tokens count from 0). */
  has(d: number): boolean {
    while (this.#count < d && !this.#done) this.#advance();
    return this.#count > d || !this.#done;
  }

  /** Scans token `d`; only after `has(d)` returned true. Then read `starts[d]`, `ends[d]`, `hashes[d]`. */
  scan(d: number): void {
    if (this.#count === d) this.#advance();
  }
}

/**
 * Pushes onto `hits` the value sets of every pattern that matches the topic in `tokens`. Iterative,
 * so that a pattern thousands of tokens deep cannot overflow the call stack: it follows one child
 * and parks the other (the `*` child, when a literal child matches too) on `stack`/`depths`, which
 * are reused across calls. As fast as the recursive walk it replaced.
 */
function collect<V>(
  root: TrieNode<V>,
  tokens: TopicTokens,
  hits: Set<V>[],
  stack: TrieNode<V>[],
  depths: number[],
): void {
  let node = root;
  let d = 0;
  let top = 0;
  for (;;) {
    let next: TrieNode<V> | undefined;
    if (!tokens.has(d)) {
      if (node.values !== undefined) hits.push(node.values);
    } else {
      // `rest` is `<prefix>.>`; reaching here means a token follows the prefix, as `>` needs.
      if (node.rest !== undefined) hits.push(node.rest);
      if (node.literal !== undefined) {
        tokens.scan(d);
        next = node.literal.get(tokens.hashes[d]!);
        if (next !== undefined) {
          const start = tokens.starts[d]!;
          const length = tokens.ends[d]! - start;
          while (
            next !== undefined &&
            !(next.token.length === length && tokens.topic.startsWith(next.token, start))
          ) {
            next = next.sibling;
          }
        }
      }
      if (node.star !== undefined) {
        if (next === undefined) next = node.star;
        else {
          stack[top] = node.star;
          depths[top++] = d + 1;
        }
      }
    }
    if (next !== undefined) {
      node = next;
      d++;
    } else if (top > 0) {
      node = stack[--top]!;
      d = depths[top]!;
    } else return;
  }
}

/**
 * Maps topic patterns to values. A value is stored at most once per pattern (set semantics); a value
 * stored under several patterns that match one topic is returned once by `match`. The order of the
 * values `match` returns is unspecified.
 *
 * Nothing is stale: every method is synchronous and runs no user code, so a call observes every
 * `add`/`remove` that returned before it.
 */
export class TopicMatcher<V> {
  /** Wildcard-free patterns: the topic itself is the key. */
  readonly #exact = new Map<string, Set<V>>();
  readonly #root = new TrieNode<V>('');
  #size = 0;
  #wildcardPairs = 0;
  #nodes = 0;
  /** Scratch of one `match` call (no user code runs inside it, so sharing is safe). */
  readonly #hits: Set<V>[] = [];
  readonly #tokens = new TopicTokens();
  readonly #stack: TrieNode<V>[] = [];
  readonly #depths: number[] = [];

  /** The number of (pattern, value) pairs stored. */
  get size(): number {
    return this.#size;
  }

  /**
   * Subscribes `value` to `pattern`.
   * @returns true when the pair is new, false when it was already stored (nothing changes).
   * @throws {PatternError} when `pattern` is malformed.
   */
  add(pattern: string, value: V): boolean {
    const wildcard = check(pattern, 'pattern');
    let set: Set<V> | undefined;
    if (!wildcard) {
      set = this.#exact.get(pattern);
      if (set === undefined) this.#exact.set(pattern, (set = new Set()));
    } else {
      const tokens = pattern.split('.');
      const endsWithRest = tokens[tokens.length - 1] === '>';
      const depth = endsWithRest ? tokens.length - 1 : tokens.length;
      let node = this.#root;
      for (let i = 0; i < depth; i++) {
        const token = tokens[i]!;
        if (token === '*') {
          if (node.star === undefined) {
            node.star = new TrieNode('');
            this.#nodes++;
          }
          node = node.star;
        } else {
          const { child, created } = node.ensureChild(token);
          if (created) this.#nodes++;
          node = child;
        }
      }
      set = endsWithRest ? (node.rest ??= new Set()) : (node.values ??= new Set());
    }
    if (set.has(value)) return false;
    set.add(value);
    this.#size++;
    if (wildcard) this.#wildcardPairs++;
    return true;
  }

  /**
   * Unsubscribes `value` from `pattern`, pruning trie nodes left empty.
   * @returns whether the pair was stored.
   * @throws {PatternError} when `pattern` is malformed (it can never have been added).
   */
  remove(pattern: string, value: V): boolean {
    if (!check(pattern, 'pattern')) {
      const set = this.#exact.get(pattern);
      if (set === undefined || !set.delete(value)) return false;
      if (set.size === 0) this.#exact.delete(pattern);
      this.#size--;
      return true;
    }
    // Walk down recording the path, then prune upwards: iterative, like `collect`.
    const tokens = pattern.split('.');
    const endsWithRest = tokens[tokens.length - 1] === '>';
    const depth = endsWithRest ? tokens.length - 1 : tokens.length;
    const path: TrieNode<V>[] = [this.#root];
    let node = this.#root;
    for (let i = 0; i < depth; i++) {
      const token = tokens[i]!;
      const child = token === '*' ? node.star : node.child(token);
      if (child === undefined) return false;
      path.push(child);
      node = child;
    }
    if (endsWithRest) {
      if (node.rest === undefined || !node.rest.delete(value)) return false;
      if (node.rest.size === 0) node.rest = undefined;
    } else {
      if (node.values === undefined || !node.values.delete(value)) return false;
      if (node.values.size === 0) node.values = undefined;
    }
    for (let i = depth; i > 0 && path[i]!.isEmpty(); i--) {
      const parent = path[i - 1]!;
      if (tokens[i - 1] === '*') parent.star = undefined;
      else parent.deleteChild(path[i]!);
      this.#nodes--;
    }
    this.#size--;
    this.#wildcardPairs--;
    return true;
  }

  /**
   * Whether `value` is stored under exactly this `pattern` (not whether the pattern would match).
   * @throws {PatternError} when `pattern` is malformed.
   */
  has(pattern: string, value: V): boolean {
    if (!check(pattern, 'pattern')) return this.#exact.get(pattern)?.has(value) ?? false;
    const tokens = pattern.split('.');
    let node: TrieNode<V> | undefined = this.#root;
    for (let i = 0; i < tokens.length && node !== undefined; i++) {
      const token = tokens[i]!;
      if (token === '>') return node.rest?.has(value) ?? false;
      node = token === '*' ? node.star : node.child(token);
    }
    return node?.values?.has(value) ?? false;
  }

  /**
   * The values subscribed to `topic` through any pattern, each once, in unspecified order. The array
   * is fresh: the caller may keep or mutate it.
   * @throws {PatternError} when `topic` is malformed (including when it contains `*` or `>`).
   */
  match(topic: string): V[] {
    checkTopic(topic);
    const exact = this.#exact.get(topic);
    if (this.#wildcardPairs === 0) return exact === undefined ? [] : Array.from(exact);
    const hits = this.#hits;
    if (exact !== undefined) hits.push(exact);
    this.#tokens.reset(topic);
    collect(this.#root, this.#tokens, hits, this.#stack, this.#depths);
    let out: V[];
    if (hits.length === 0) return [];
    if (hits.length === 1) out = Array.from(hits[0]!);
    else {
      // Only here can one value arrive through two patterns, so only here is a Set worth its cost.
      const seen = new Set<V>();
      for (const set of hits) for (const v of set) seen.add(v);
      out = Array.from(seen);
    }
    hits.length = 0;
    return out;
  }

  /** Removes every pair. */
  clear(): void {
    this.#exact.clear();
    this.#root.literal = undefined;
    this.#root.star = undefined;
    this.#root.values = undefined;
    this.#root.rest = undefined;
    this.#size = 0;
    this.#wildcardPairs = 0;
    this.#nodes = 0;
  }

  [kMatcherStats](): MatcherStats {
    return { nodes: this.#nodes, exactPatterns: this.#exact.size, wildcardPairs: this.#wildcardPairs };
  }
}
