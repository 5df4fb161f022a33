import { describe, expect, it } from 'vitest';
import { formatValue, renderFamilies, type Family } from '../../src/metrics/exposition.js';
import { promtoolCheckMetrics } from '../support/prometheus.js';

describe('renderFamilies', () => {
  it('renders HELP, TYPE and samples; escapes help and label values', () => {
    const families: Family[] = [
      { name: 'x_total', help: 'a\\b\nc', type: 'counter', samples: [{ labels: { name: 'q"\\\n' }, value: 2 }] },
      { name: 'y_bytes', help: 'y', type: 'gauge', samples: [{ labels: {}, value: 0.5 }] },
    ];
    expect(renderFamilies(families)).toBe(
      '# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{name="q\\"\\\\\\n"} 2\n' + '# HELP y_bytes y\n# TYPE y_bytes gauge\ny_bytes 0.5\n',
    );
  });

  it('leaves out families without samples', () => {
    expect(renderFamilies([{ name: 'e', help: 'e', type: 'gauge', samples: [] }])).toBe('');
  });

  it.each([
    [1, '1'],
    [1e21, '1e+21'],
    [NaN, 'NaN'],
    [Infinity, '+Inf'],
    [-Infinity, '-Inf'],
  ])('formatValue(%s) = %s', (v, s) => expect(formatValue(v)).toBe(s));

  it('what it renders passes promtool check metrics, and promtool does catch a bad exposition', async () => {
    const good = renderFamilies([{ name: 'a_total', help: 'h', type: 'counter', samples: [{ labels: { l: 'v"' }, value: 3 }] }]);
    expect(await promtoolCheckMetrics(good)).toEqual({ code: 0, problems: '' });
    const bad = renderFamilies([{ name: 'a_total', help: 'h', type: 'gauge', samples: [{ labels: {}, value: 3 }] }]);
    const result = await promtoolCheckMetrics(bad);
    expect(result.code).not.toBe(0);
    expect(result.problems).toContain('_total');
  });
});
