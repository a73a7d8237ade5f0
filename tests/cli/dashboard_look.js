// What a user sees in dlt's dashboard (make dashboard), read in headless Chromium with
// playwright-core: the data browser's table list after "Load row counts", and the first table's
// rows after "Run Query". Prints one JSON object: {"row_counts": {table: n}, "query": {table, result}}.
// Usage: node dashboard_look.js <playwright-core folder> <chromium> <dashboard URL> [screenshot.png]
const [playwrightDir, chromiumPath, url, screenshot] = process.argv.slice(2);
const { chromium } = require(require.resolve('playwright-core', { paths: [playwrightDir] }));

(async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
           '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 2400 } });
    await page.goto(url, { waitUntil: 'networkidle', timeout: 90000 });
    const loadCounts = page.getByRole('button', { name: 'Load row counts' });
    await loadCounts.waitFor({ timeout: 90000 });
    // marimo draws each table in its own element; the data browser's lists the tables by write_disposition
    const tables = page.locator('marimo-table').filter({ hasText: 'write_disposition' });
    await tables.locator('tr').nth(1).waitFor({ timeout: 90000 });
    await loadCounts.click();
    const rowCounts = {};
    for (;;) {
      // each row: name, row_count, resource, write_disposition; the counts arrive after the click
      let rows = [];
      for (let tries = 0; tries < 180; tries++) {
        rows = (await tables.locator('tbody tr').allInnerTexts())
          .map(text => text.split(/[\t\n]+/).map(c => c.trim()).filter(c => c));
        if (rows.length && rows.every(cells => /^[\d,]+$/.test(cells[1] || ''))) break;
        await page.waitForTimeout(500);
      }
      for (const cells of rows) rowCounts[cells[0]] = Number((cells[1] || '').replace(/,/g, ''));
      const next = tables.getByRole('button', { name: 'Next page' });
      if (!(await next.isEnabled())) break;
      await next.click();
      await page.waitForTimeout(500);
    }
    // the query the data browser prepared for the selected table, run as a user runs it
    const sql = (await page.locator('marimo-code-editor .cm-content').first().innerText()).replace(/\s+/g, ' ').trim();
    await page.getByRole('button', { name: 'Run Query' }).click();
    const result = page.locator('marimo-table').filter({ hasText: '_dlt_load_id' })
      .getByText(/^\d[\d,]* rows?, \d+ columns?$/);
    await result.waitFor({ timeout: 90000 });
    if (screenshot) await page.screenshot({ path: screenshot });
    console.log(JSON.stringify({ row_counts: rowCounts, query: { sql, result: await result.innerText() } }));
  } finally {
    await browser.close();
  }
})().catch(error => { console.error(String(error && error.stack || error)); process.exit(1); });
