import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, WeftError } from '../../core/errors.js';
import {
  isPattern,
  kMatcherStats,
  matchesPattern,
  PatternError,
  TopicMatcher,
  validatePattern,
  validateTopic,
} from '../../core/topic-matcher.js';

// Pin a failing run with WEFT_FC_SEED=<seed> (fast-check prints seed and path on failure).
const seed = process.env.WEFT_FC_SEED === undefined ? undefined : Number(process.env.WEFT_FC_SEED);
const params = <T>(numRuns: number): fc.Parameters<T> =>
  seed === undefined ? { numRuns } : { numRuns, seed };

// ---------------------------------------------------------------------------------------------
// The naive model: a list of (pattern, value) pairs and a token-by-token glob, no trie, no regex.

function naiveGlob(pattern: string, topic: string): boolean {
  const p = pattern.split('.');
  const t = topic.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return t.length > i; // one or more tokens left
    if (i >= t.length) return false;
    if (p[i] !== '*' && p[i] !== t[i]) return false;
  }
  return p.length === t.length;
}

type Pair = readonly [pattern: string, value: number];

function naiveMatch(pairs: readonly Pair[], topic: string): number[] {
  const out: number[] = [];
  for (const [pattern, value] of pairs) {
    if (naiveGlob(pattern, topic) && !out.includes(value)) out.push(value);
  }
  return out;
}

/** The order of match() results is not part of the contract: compare as sorted lists. */
const sorted = (xs: readonly number[]): number[] => [...xs].sort((a, b) => a - b);
const sortedStrings = (xs: readonly string[]): string[] => [...xs].sort();

function expectSameSet(actual: number[], expected: number[]): void {
  expect(new Set(actual).size, 'match() returned a value twice').toBe(actual.length);
  expect(sorted(actual)).toEqual(sorted(expected));
}

/** Trie nodes the pairs need: one per distinct prefix of each wildcard pattern, excluding a final `>`. */
function expectedNodes(pairs: readonly Pair[]): number {
  const prefixes = new Set<string>();
  for (const [pattern] of pairs) {
    const tokens = pattern.split('.');
    if (!tokens.some((t) => t === '*' || t === '>')) continue;
    const depth = tokens[tokens.length - 1] === '>' ? tokens.length - 1 : tokens.length;
    for (let i = 1; i <= depth; i++) prefixes.add(tokens.slice(0, i).join('.'));
  }
  return prefixes.size;
}

/** The trie keys literal children by a 30-bit FNV-1a hash of the token; this is that hash. */
function fnv30(token: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < token.length; i++) h = Math.imul(h ^ token.charCodeAt(i), 0x01000193);
  return h & 0x3fffffff;
}
/** Three tokens with the same hash (found by search), to drive the collision chains. */
const COLLIDING = ['k196646', 'k5308497', 'k5960619'] as const;

// Small alphabets so that topics and patterns collide often.
const topicToken = fc.constantFrom('a', 'b', 'c');
const patternToken = fc.constantFrom('a', 'b', 'c', '*', '*');
const topicArb = fc.array(topicToken, { minLength: 1, maxLength: 4 }).map((ts) => ts.join('.'));
const patternArb = fc
  .tuple(fc.array(patternToken, { minLength: 0, maxLength: 4 }), fc.boolean())
  .filter(([tokens, rest]) => tokens.length > 0 || rest)
  .map(([tokens, rest]) => (rest ? [...tokens, '>'] : tokens).join('.'));

function expectPatternError(
  fn: () => unknown,
  input: string,
  kind: 'pattern' | 'topic' = 'pattern',
): PatternError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PatternError);
  const err = caught as PatternError;
  expect(err).toBeInstanceOf(WeftError);
  expect(err.code).toBe(ErrorCode.PATTERN);
  expect(err.code).toBe('WEFT_ERR_PATTERN');
  expect(err.name).toBe('PatternError');
  expect(err.kind).toBe(kind);
  expect(err.input).toBe(input);
  expect(err.message).toContain(JSON.stringify(input));
  return err;
}

// ---------------------------------------------------------------------------------------------

/** [pattern, topic, matches?]: the same table is in docs/topics.md. */
const EXAMPLES: [string, string, boolean][] = [
  ['orders.eu.created', 'orders.eu.created', true],
  ['orders.eu.created', 'orders.us.created', false],
  ['orders.*.created', 'orders.eu.created', true],
  ['orders.*.created', 'orders.eu.west.created', false],
  ['orders.*.created', 'orders.created', false],
  ['orders.*', 'orders.eu', true],
  ['orders.*', 'orders.eu.created', false],
  ['orders.*', 'orders', false],
  ['orders.>', 'orders.eu', true],
  ['orders.>', 'orders.eu.created', true],
  ['orders.>', 'orders', false],
  ['orders.*.>', 'orders.eu.created', true],
  ['orders.*.>', 'orders.eu', false],
  ['*', 'orders', true],
  ['*', 'orders.eu', false],
  ['>', 'orders', true],
  ['>', 'orders.eu.created', true],
  ['*.*.created', 'orders.eu.created', true],
  ['orders', 'orders.eu', false],
  ['Orders.eu', 'orders.eu', false],
  ['order-v2.eu_west.42', 'order-v2.eu_west.42', true],
  ['commandes.*.créée', 'commandes.été.créée', true],
  ['注文.>', '注文.東京.作成', true],
  ['🚀.*', '🚀.launch', true],
];

const MALFORMED_PATTERNS: [string, string][] = [
  ['', 'empty'],
  ['a..b', 'empty token'],
  ['.a', 'starts with'],
  ['a.', 'ends with'],
  ['.', 'starts with'],
  ['a.>.b', 'last token'],
  ['>.a', 'last token'],
  ['a*', 'whole token'],
  ['*a.b', 'whole token'],
  ['a.b>', 'whole token'],
  ['a.**', 'whole token'],
  ['a.>>', 'whole token'],
  ['a b', 'whitespace'],
  [' a', 'whitespace'],
  ['a\tb', 'whitespace'],
  ['a\nb', 'whitespace'],
  ['a\u00a0b', 'whitespace'],
  ['a\u2028b', 'whitespace'],
  ['a\ufeffb', 'whitespace'],
  ['a\u0000b', 'control'],
  ['a\u007fb', 'control'],
  ['a\u0090b', 'control'],
  ['a\ud800', 'surrogate'],
  ['\udc00.a', 'surrogate'],
  ['a\udc00\udc00', 'surrogate'],
  ['a\udc00\ud800', 'surrogate'],
];

describe('topic grammar', () => {
  it.each(EXAMPLES)('pattern %j against topic %j matches: %s', (pattern, topic, expected) => {
    expect(matchesPattern(pattern, topic)).toBe(expected);
    const m = new TopicMatcher<string>();
    m.add(pattern, 'v');
    expect(m.match(topic)).toEqual(expected ? ['v'] : []);
  });

  it('`>` matches one or more trailing tokens and `*` exactly one', () => {
    const m = new TopicMatcher<string>();
    m.add('a.*', 'star');
    m.add('a.>', 'rest');
    expect(m.match('a')).toEqual([]);
    expect(sortedStrings(m.match('a.b'))).toEqual(['rest', 'star']);
    expect(m.match('a.b.c')).toEqual(['rest']);
    expect(m.match('a.b.c.d.e.f')).toEqual(['rest']);
  });

  it('treats tokens with "-", "_", digits and Unicode letters as literals', () => {
    for (const p of ['order-v2', 'eu_west', '42', 'été', '東京', 'a-b_c.1-2', 'Ünïcödé.ok', '🚀']) {
      expect(isPattern(p)).toBe(false);
      expect(() => validatePattern(p)).not.toThrow();
      expect(() => validateTopic(p)).not.toThrow();
      expect(matchesPattern(p, p)).toBe(true);
    }
    expect(matchesPattern('été', 'ete')).toBe(false);
    // No normalisation: precomposed "é" and "e" + combining acute are different tokens.
    expect(matchesPattern('\u00e9', 'e\u0301')).toBe(false);
  });

  it.each(MALFORMED_PATTERNS)('rejects the malformed pattern %j (%s)', (pattern, why) => {
    const err = expectPatternError(() => validatePattern(pattern), pattern);
    expect(err.message).toContain(why);
    expect(isPattern(pattern)).toBe(false);
    const m = new TopicMatcher<number>();
    expectPatternError(() => m.add(pattern, 1), pattern);
    expectPatternError(() => m.remove(pattern, 1), pattern);
    expectPatternError(() => m.has(pattern, 1), pattern);
    expectPatternError(() => matchesPattern(pattern, 'a'), pattern);
    expect(m.size).toBe(0);
  });

  it.each([
    ['', 'empty'],
    ['a..b', 'empty token'],
    ['a.', 'ends with'],
    ['a.*', 'cannot contain wildcards'],
    ['a.>', 'cannot contain wildcards'],
    ['a*b', 'cannot contain wildcards'],
    ['a b', 'whitespace'],
  ])('match() rejects the malformed topic %j (%s)', (topic, why) => {
    const m = new TopicMatcher<number>();
    m.add('>', 1);
    const err = expectPatternError(() => m.match(topic), topic, 'topic');
    expect(err.message).toContain(why);
    expectPatternError(() => validateTopic(topic), topic, 'topic');
    expectPatternError(() => matchesPattern('>', topic), topic, 'topic');
  });

  it('rejects non-string input with a PatternError', () => {
    const m = new TopicMatcher<number>();
    for (const bad of [undefined, null, 42, {}, ['a']]) {
      expect(() => m.add(bad as unknown as string, 1)).toThrow(PatternError);
      expect(() => m.match(bad as unknown as string)).toThrow(/must be a string/);
      expect(isPattern(bad)).toBe(false);
    }
  });

  it('shortens a huge input in the message but keeps it whole on the error', () => {
    const long = `${'x'.repeat(10_000)} `;
    let caught: PatternError | undefined;
    try {
      validatePattern(long);
    } catch (err) {
      caught = err as PatternError;
    }
    expect(caught?.input).toBe(long);
    expect(caught!.message.length).toBeLessThan(400);
    expect(caught!.message).toContain('10001 chars');
  });

  it('isPattern is true only for well-formed patterns with a wildcard token', () => {
    expect(isPattern('a.*')).toBe(true);
    expect(isPattern('>')).toBe(true);
    expect(isPattern('a.b')).toBe(false);
    expect(isPattern('a*')).toBe(false);
  });

  it('accepts exactly the strings a reference validator accepts', () => {
    const isBanned = (ch: string) =>
      /[\s\p{Cc}]/u.test(ch) || (ch.length === 1 && /[\ud800-\udfff]/.test(ch));
    const referenceValid = (s: string, kind: 'pattern' | 'topic'): boolean => {
      if (s === '' || [...s].some(isBanned)) return false;
      const tokens = s.split('.');
      return tokens.every(
        (t, i) =>
          t !== '' &&
          ((kind === 'pattern' && (t === '*' || (t === '>' && i === tokens.length - 1))) ||
            (!t.includes('*') && !t.includes('>'))),
      );
    };
    const unit = fc.oneof(
      { weight: 8, arbitrary: fc.constantFrom('a', 'é', '.', '.', '*', '>', '-', '😀') },
      {
        weight: 1,
        arbitrary: fc.constantFrom(' ', '\t', '\u0000', '\u0085', '\u00a0', '\u3000', '\ud800', '\udc00'),
      },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) },
    );
    fc.assert(
      fc.property(fc.string({ unit, maxLength: 8 }), (s) => {
        for (const kind of ['pattern', 'topic'] as const) {
          const validate: (s: unknown) => void = kind === 'pattern' ? validatePattern : validateTopic;
          let ok = true;
          try {
            validate(s);
          } catch (err) {
            expect(err).toBeInstanceOf(PatternError);
            ok = false;
          }
          expect(ok, `${kind} ${JSON.stringify(s)}`).toBe(referenceValid(s, kind));
        }
      }),
      params(2000),
    );
  });
});

describe('TopicMatcher', () => {
  it('stores a value once per pattern and counts (pattern, value) pairs in size', () => {
    const m = new TopicMatcher<string>();
    expect(m.add('orders.*.created', 'v')).toBe(true);
    expect(m.add('orders.*.created', 'v')).toBe(false);
    expect(m.add('orders.eu.created', 'v')).toBe(true);
    expect(m.add('orders.eu.created', 'v')).toBe(false);
    expect(m.add('orders.>', 'w')).toBe(true);
    expect(m.size).toBe(3);
    expect(m.has('orders.*.created', 'v')).toBe(true);
    expect(m.has('orders.*.created', 'w')).toBe(false);
    expect(m.has('orders.>', 'w')).toBe(true);
    expect(m.has('orders.eu.*', 'v')).toBe(false);
  });

  it('returns a value once when several of its patterns match', () => {
    const m = new TopicMatcher<string>();
    const v = 'v';
    for (const p of ['orders.eu.created', 'orders.*.created', 'orders.>', '>', '*.eu.*']) m.add(p, v);
    m.add('orders.>', 'w');
    expect(sortedStrings(m.match('orders.eu.created'))).toEqual(['v', 'w']);
  });

  it('compares values by identity (SameValueZero), like a Set', () => {
    const m = new TopicMatcher<object>();
    const a = { id: 1 };
    const b = { id: 1 };
    m.add('x.*', a);
    m.add('x.*', b);
    m.add('x.y', a);
    expect(m.size).toBe(3);
    expect(m.match('x.y')).toHaveLength(2);
  });

  it('remove() reports whether the pair was there and leaves other pairs alone', () => {
    const m = new TopicMatcher<string>();
    m.add('a.*', 'v');
    m.add('a.*', 'w');
    m.add('a.b', 'v');
    expect(m.remove('a.*', 'v')).toBe(true);
    expect(m.remove('a.*', 'v')).toBe(false);
    expect(m.remove('a.>', 'v')).toBe(false);
    expect(m.remove('a.c', 'v')).toBe(false);
    expect(m.remove('a.*.c', 'w')).toBe(false);
    expect(m.size).toBe(2);
    expect(sortedStrings(m.match('a.b'))).toEqual(['v', 'w']);
    expect(m.match('a.c')).toEqual(['w']);
  });

  it('returns a fresh array the caller may mutate', () => {
    const m = new TopicMatcher<string>();
    m.add('a.b', 'v');
    m.match('a.b').push('junk');
    expect(m.match('a.b')).toEqual(['v']);
    m.add('a.*', 'w');
    m.match('a.c').length = 0;
    expect(m.match('a.c')).toEqual(['w']);
  });

  it('prunes empty trie nodes, so add/remove churn does not grow memory', () => {
    const m = new TopicMatcher<number>();
    m.add('keep.*', 0);
    const base = m[kMatcherStats]();
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 2000; i++) m.add(`t${i}.*.x${i % 7}.>`, i);
      for (let i = 0; i < 2000; i++) m.add(`t${i}.exact`, i);
      expect(m[kMatcherStats]().nodes).toBeGreaterThan(base.nodes);
      for (let i = 0; i < 2000; i++) expect(m.remove(`t${i}.*.x${i % 7}.>`, i)).toBe(true);
      for (let i = 0; i < 2000; i++) expect(m.remove(`t${i}.exact`, i)).toBe(true);
      expect(m[kMatcherStats]()).toEqual(base);
    }
    expect(m.size).toBe(1);
    expect(m.match('keep.it')).toEqual([0]);
  });

  it('tells apart tokens whose hashes collide, and prunes any link of a collision chain', () => {
    for (const t of COLLIDING) expect(fnv30(t)).toBe(fnv30(COLLIDING[0])); // else update COLLIDING
    const permutations = (xs: readonly string[]): string[][] =>
      xs.length <= 1
        ? [[...xs]]
        : xs.flatMap((x, i) => permutations(xs.toSpliced(i, 1)).map((rest) => [x, ...rest]));
    for (const removal of permutations(COLLIDING)) {
      const m = new TopicMatcher<string>();
      const [first, ...others] = COLLIDING;
      m.add(`x.${first}.*`, first);
      for (const t of others) expect(m.match(`x.${t}.q`)).toEqual([]); // same hash, other token
      for (const t of others) m.add(`x.${t}.*`, t);
      const live = new Set<string>(COLLIDING);
      for (const t of removal) {
        for (const u of COLLIDING) {
          expect(m.match(`x.${u}.q`)).toEqual(live.has(u) ? [u] : []);
          expect(m.has(`x.${u}.*`, u)).toBe(live.has(u));
        }
        expect(
          m.remove(`x.${t}.*`, t),
          `remove ${t} after ${[...COLLIDING].filter((u) => !live.has(u))}`,
        ).toBe(true);
        live.delete(t);
      }
      expect(m[kMatcherStats]()).toEqual({ nodes: 0, exactPatterns: 0, wildcardPairs: 0 });
    }
  });

  it('handles a pattern 100,000 tokens deep without overflowing the call stack', () => {
    const m = new TopicMatcher<number>();
    const deep = Array(100_000).fill('a').join('.');
    const stars = Array(100_000).fill('*').join('.');
    m.add(`${deep}.*`, 1);
    m.add(`${deep}.>`, 2);
    m.add(stars, 3);
    expect(sorted(m.match(`${deep}.z`))).toEqual([1, 2]);
    expect(m.match(deep)).toEqual([3]);
    expect(m.remove(`${deep}.*`, 1)).toBe(true);
    expect(m.remove(`${deep}.>`, 2)).toBe(true);
    expect(m.remove(stars, 3)).toBe(true);
    expect(m[kMatcherStats]()).toEqual({ nodes: 0, exactPatterns: 0, wildcardPairs: 0 });
  });

  it('clear() removes every pair', () => {
    const m = new TopicMatcher<number>();
    m.add('a.*', 1);
    m.add('a.b', 2);
    m.add('>', 3);
    m.clear();
    expect(m.size).toBe(0);
    expect(m.match('a.b')).toEqual([]);
    expect(m[kMatcherStats]()).toEqual({ nodes: 0, exactPatterns: 0, wildcardPairs: 0 });
  });

  it('matchesPattern agrees with the naive glob', () => {
    fc.assert(
      fc.property(patternArb, topicArb, (pattern, topic) => {
        expect(matchesPattern(pattern, topic)).toBe(naiveGlob(pattern, topic));
      }),
      params(2000),
    );
  });

  it('match() agrees with a naive linear matcher over the same pairs', () => {
    const pairArb = fc.tuple(patternArb, fc.integer({ min: 0, max: 5 }));
    fc.assert(
      fc.property(
        fc.array(pairArb, { maxLength: 30 }),
        fc.array(topicArb, { minLength: 1, maxLength: 20 }),
        (pairs, topics) => {
          const m = new TopicMatcher<number>();
          const distinct: Pair[] = [];
          for (const [p, v] of pairs) {
            const fresh = !distinct.some(([q, w]) => q === p && w === v);
            if (fresh) distinct.push([p, v]);
            expect(m.add(p, v)).toBe(fresh);
          }
          expect(m.size).toBe(distinct.length);
          expect(m[kMatcherStats]().nodes).toBe(expectedNodes(distinct));
          for (const t of topics) expectSameSet(m.match(t), naiveMatch(distinct, t));
        },
      ),
      params(500),
    );
  });

  describe('model-based: add, remove and match against the naive linear matcher', () => {
    interface Model {
      pairs: Pair[];
    }
    type Real = TopicMatcher<number>;

    const checkInvariants = (model: Model, real: Real) => {
      expect(real.size).toBe(model.pairs.length);
      expect(real[kMatcherStats]().nodes).toBe(expectedNodes(model.pairs));
    };

    class AddCommand implements fc.Command<Model, Real> {
      constructor(
        readonly pattern: string,
        readonly value: number,
      ) {}
      check(): boolean {
        return true;
      }
      run(model: Model, real: Real): void {
        const fresh = !model.pairs.some(([p, v]) => p === this.pattern && v === this.value);
        if (fresh) model.pairs.push([this.pattern, this.value]);
        expect(real.add(this.pattern, this.value)).toBe(fresh);
        checkInvariants(model, real);
      }
      toString(): string {
        return `add(${JSON.stringify(this.pattern)}, ${this.value})`;
      }
    }

    class RemoveCommand implements fc.Command<Model, Real> {
      constructor(
        readonly pattern: string,
        readonly value: number,
      ) {}
      check(): boolean {
        return true;
      }
      run(model: Model, real: Real): void {
        const at = model.pairs.findIndex(([p, v]) => p === this.pattern && v === this.value);
        if (at !== -1) model.pairs.splice(at, 1);
        expect(real.remove(this.pattern, this.value)).toBe(at !== -1);
        checkInvariants(model, real);
      }
      toString(): string {
        return `remove(${JSON.stringify(this.pattern)}, ${this.value})`;
      }
    }

    class MatchCommand implements fc.Command<Model, Real> {
      constructor(readonly topic: string) {}
      check(): boolean {
        return true;
      }
      run(model: Model, real: Real): void {
        expectSameSet(real.match(this.topic), naiveMatch(model.pairs, this.topic));
      }
      toString(): string {
        return `match(${JSON.stringify(this.topic)})`;
      }
    }

    // Two literal tokens only, so that remove() often hits a stored pair; and two whose hashes
    // collide, so that every literal lookup and every pruning goes through a collision chain.
    const [x, y] = COLLIDING;
    const token = fc.constantFrom(x, y, '*');
    const smallPattern = fc
      .tuple(fc.array(token, { minLength: 0, maxLength: 3 }), fc.boolean())
      .filter(([tokens, rest]) => tokens.length > 0 || rest)
      .map(([tokens, rest]) => (rest ? [...tokens, '>'] : tokens).join('.'));
    const smallTopic = fc
      .array(fc.constantFrom(x, y), { minLength: 1, maxLength: 4 })
      .map((ts) => ts.join('.'));
    const value = fc.integer({ min: 0, max: 3 });

    const commands = [
      fc.tuple(smallPattern, value).map(([p, v]) => new AddCommand(p, v)),
      fc.tuple(smallPattern, value).map(([p, v]) => new RemoveCommand(p, v)),
      smallTopic.map((t) => new MatchCommand(t)),
    ];

    it('keeps match() results, size and trie size equal to the model', () => {
      fc.assert(
        fc.property(fc.commands(commands, { maxCommands: 100 }), (cmds) => {
          fc.modelRun(() => ({ model: { pairs: [] }, real: new TopicMatcher<number>() }), cmds);
        }),
        params(300),
      );
    });
  });
});
