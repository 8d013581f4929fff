//! The growth chart and the contact import in the browser, at 1280 px and at 390 px:
//! the chart spans its card, its axis steps are round, the computed days are shaded and
//! hovering shows a day's figures; a CSV is uploaded, mapped (one new field), previewed
//! and imported with the progress bar reaching done and the rejected rows offered.

use super::*;

/// The element's box as (left, top, width, height) in CSS pixels.
async fn rect(b: &Browser, css: &str) -> (f64, f64, f64, f64) {
    let r = b
        .client
        .execute(
            "const r = document.querySelector(arguments[0]).getBoundingClientRect(); return [r.left, r.top, r.width, r.height];",
            vec![json!(css)],
        )
        .await
        .unwrap();
    let v: Vec<f64> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    (v[0], v[1], v[2], v[3])
}

async fn inner_width(b: &Browser) -> f64 {
    b.client
        .execute("return document.documentElement.clientWidth;", vec![])
        .await
        .unwrap()
        .as_f64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_growth_chart_and_the_import_work_at_desktop_and_phone_widths() {
    let Some((_driver, client)) = start_browser().await else {
        return;
    };
    let server = start_server().await;
    let mut b = Browser {
        client,
        base: server.base.clone(),
        shots: screenshots_dir(),
        console: Vec::new(),
    };
    b.goto("/panel/sign-in").await;
    b.type_into("#email", "demo@segmentd.local").await;
    b.type_into("#password", "segmentd-demo").await;
    b.click("#sign-in").await;
    b.find("#segments").await;
    let segments: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/segments", server.base))
        .bearer_auth(&server.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let segment = segments["items"][0]["id"].as_i64().unwrap();
    let csv_dir = tempfile::tempdir().unwrap();
    let csv = csv_dir.path().join("people.csv");
    let mut text = String::from("external_id,email,Loyalty points\n");
    for i in 0..300 {
        text.push_str(&format!("imp-{i},imp{i}@example.com,{i}\n"));
    }
    text.push_str("imp-bad,not an address,5\nimp-bad2,,many\n");
    std::fs::write(&csv, text).unwrap();

    for (width, height) in [(1280, 800), (390, 844)] {
        b.client.set_window_size(width, height).await.unwrap();
        b.goto(&format!("/panel/segments/{segment}")).await;
        b.find("#chart svg.chart").await;
        let viewport = inner_width(&b).await;
        let card = rect(&b, "#growth").await;
        let chart = rect(&b, "#chart svg.chart").await;
        assert!(
            chart.2 >= card.2 * 0.85 && chart.0 + chart.2 <= viewport + 0.5,
            "{width}px: the chart ({chart:?}) spans its card ({card:?}) inside the viewport"
        );
        // Round axis steps: every tick label is 1, 2, 2.5 or 5 times a power of ten apart.
        let mut ticks = Vec::new();
        for t in b.all("#chart svg.chart text.axis[text-anchor='end']").await {
            let label = t.text().await.unwrap();
            if let Ok(n) = label.replace(',', "").parse::<f64>() {
                ticks.push(n);
            }
        }
        assert!(ticks.len() >= 2, "{ticks:?}");
        let step = ticks[1] - ticks[0];
        let power = 10f64.powf(step.log10().floor());
        assert!(
            [1.0, 2.0, 2.5, 5.0].contains(&(step / power)),
            "{width}px: axis step {step} of {ticks:?}"
        );
        // The demo's data spans the days before its segments were saved: computed, shaded.
        b.find("#chart .computed-zone").await;
        assert!(
            b.text("#chart-note")
                .await
                .contains("computed from the data")
        );
        // Hovering shows a day's figures.
        b.client
            .execute(
                "const z = document.querySelector('#chart .hover-zone'); const r = z.getBoundingClientRect();
                 z.dispatchEvent(new PointerEvent('pointermove', {clientX: r.left + r.width * 0.3, clientY: r.top + 5, bubbles: true}));",
                vec![],
            )
            .await
            .unwrap();
        let tip = b.text("#chart-tip").await;
        assert!(
            tip.contains("contacts") && tip.contains("(computed)"),
            "{tip}"
        );
        let tip_box = rect(&b, "#chart-tip").await;
        assert!(
            tip_box.0 >= 0.0 && tip_box.0 + tip_box.2 <= viewport + 0.5,
            "{tip_box:?}"
        );
        b.shot(&format!("chart-{width}")).await;

        // The import: upload, map (the points become a new number field), preview, start.
        b.goto("/panel/contacts").await;
        b.click("#import-contacts").await;
        b.find("#import-file")
            .await
            .send_keys(&csv.display().to_string())
            .await
            .unwrap();
        b.click("#import-upload-button").await;
        b.find("#import-mapping:not([hidden])").await;
        assert_eq!(b.all("#import-columns tbody tr").await.len(), 3);
        let field = format!("points_{width}");
        b.choose("#map-2", "new").await;
        b.type_into("#new-key-2", &field).await;
        b.choose("#new-type-2", "number").await;
        b.shot(&format!("import-mapping-{width}")).await;
        b.click("#import-preview-button").await;
        b.find("#import-preview:not([hidden])").await;
        assert_eq!(b.all("#import-rows tbody tr").await.len(), 20);
        for css in ["#import-start", "#import-preview-button"] {
            let (left, _, w, _) = rect(&b, css).await;
            assert!(
                left >= 0.0 && left + w <= viewport + 0.5,
                "{width}px: {css} is off screen"
            );
        }
        b.shot(&format!("import-preview-{width}")).await;
        b.click("#import-start").await;
        let done = b
            .until("the import to finish", || async {
                let t = b.text("#import-progress-text").await;
                t.starts_with("Done").then_some(t)
            })
            .await;
        // At 390 px the same contacts are imported again: updated, not added.
        assert!(done.contains("300 imported, 2 rejected"), "{done}");
        b.find("#import-rejected:not([hidden])").await;
        b.shot(&format!("import-done-{width}")).await;
    }
    b.client.set_window_size(1280, 800).await.unwrap();
    b.read_console().await;
    let errors: Vec<&Value> = b
        .console
        .iter()
        .filter(|e| e["level"] == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    b.client.close().await.unwrap();
}
