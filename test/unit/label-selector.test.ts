import { describe, expect, it } from 'vitest';
import { VmletError } from '../../src/model/errors.js';
import { labelKeyProblem, labelValueProblem, matchesSelector, parseLabelSelector, type Requirement } from '../../src/vm/label-selector.js';

describe('parseLabelSelector', () => {
  it.each<[string, Requirement[]]>([
    ['', []],
    ['   ', []],
    ['a=b', [{ key: 'a', op: 'eq', value: 'b' }]],
    ['a==b', [{ key: 'a', op: 'eq', value: 'b' }]],
    ['a!=b', [{ key: 'a', op: 'neq', value: 'b' }]],
    ['a', [{ key: 'a', op: 'exists' }]],
    ['!a', [{ key: 'a', op: 'notexists' }]],
    ['a=', [{ key: 'a', op: 'eq', value: '' }]],
    [' a = b , c != d ,e, ! f ', [
      { key: 'a', op: 'eq', value: 'b' },
      { key: 'c', op: 'neq', value: 'd' },
      { key: 'e', op: 'exists' },
      { key: 'f', op: 'notexists' },
    ]],
    ['example.com/tier=front-end_1.x', [{ key: 'example.com/tier', op: 'eq', value: 'front-end_1.x' }]],
  ])('%j', (s, reqs) => {
    expect(parseLabelSelector(s).requirements).toEqual(reqs);
  });

  it.each([
    ['a=b,', /empty requirement/],
    [',a=b', /empty requirement/],
    ['a=b,,c=d', /empty requirement/],
    ['=b', /missing key/],
    ['!=b', /missing key/],
    ['a=b=c', /value "b=c"/],
    ['a=b c', /value "b c"/],
    ['a b', /key name "a b"/],
    ['!a=b', /key name "a=b"/],
    ['-a=b', /key name "-a"/],
    ['Example.com/a=b', /prefix "Example.com"/],
    ['/a', /prefix ""/],
    ['env in (a,b)', /set-based/],
    ['env notin (a)', /set-based/],
    [`a=${'v'.repeat(64)}`, /value/],
  ])('rejects %j', (s, why) => {
    let err: unknown;
    try {
      parseLabelSelector(s);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VmletError);
    expect((err as VmletError).code).toBe('INVALID_ARGUMENT');
    expect((err as VmletError).message).toMatch(/^label_selector: /);
    expect((err as VmletError).message).toMatch(why);
  });
});

describe('matchesSelector', () => {
  const labels = { app: 'web', tier: 'front', empty: '' };
  it.each([
    ['', true],
    ['app=web', true],
    ['app==web', true],
    ['app=db', false],
    ['app!=db', true],
    ['app!=web', false],
    ['missing!=x', true],
    ['missing=x', false],
    ['app', true],
    ['missing', false],
    ['!missing', true],
    ['!app', false],
    ['empty=', true],
    ['empty', true],
    ['missing=', false],
    ['app=web,tier=front', true],
    ['app=web,tier=back', false],
    ['app=web,!tier', false],
  ])('%j → %s', (s, want) => {
    expect(matchesSelector(parseLabelSelector(s), labels)).toBe(want);
  });

  it('does not see inherited properties', () => {
    expect(matchesSelector(parseLabelSelector('constructor'), {})).toBe(false);
    expect(matchesSelector(parseLabelSelector('!toString'), {})).toBe(true);
  });
});

describe('label syntax', () => {
  it.each(['a', 'A-b_c.d', 'x'.repeat(63), 'example.com/a', 'a.b-c.d/X', `${'a'.repeat(63)}.${'b'.repeat(63)}/n`])('key %j is valid', (k) => {
    expect(labelKeyProblem(k)).toBeUndefined();
  });
  it.each(['', 'x'.repeat(64), '-a', 'a-', '_a', 'a b', 'a/b/c', 'A.com/a', '.com/a', 'a..b/c', `${'a'.repeat(64)}.com/n`, `${'a.'.repeat(127)}a/n`])(
    'key %j is invalid',
    (k) => {
      expect(labelKeyProblem(k)).toBeTypeOf('string');
    },
  );
  it.each(['', 'a', 'A-b_c.d', 'v'.repeat(63)])('value %j is valid', (v) => expect(labelValueProblem(v)).toBeUndefined());
  it.each(['v'.repeat(64), '-a', 'a-', 'a/b', 'a b', 'é'])('value %j is invalid', (v) => expect(labelValueProblem(v)).toBeTypeOf('string'));
});
