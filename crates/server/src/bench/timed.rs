//! The paths of `bench paths` timed one request after another: the panel's (builder,
//! live counts, lists, pages, members, contact search, explain), the API's beside them,
//! the saved-segment workloads beside the engine, and a campaign's audience preview.

use std::time::{Duration, Instant};

use jiff::Timestamp;
use jiff::tz::TimeZone;
use segmentd_rules::{Clock as RuleClock, parse_rule};
use segmentd_store::Account;
use serde_json::{Value, json};

use super::data::{Mix, Population};
use super::panel::Panel;
use super::report::{PathRow, WorkloadRow};
use super::server::Server;
use super::{Api, Latencies, fmt_count, fmt_duration, int, sample};
use crate::catalog::load_catalog;
use crate::panel::session::encode;

// The targets, for 1M contacts × 10 events on 2 cores.
const PAGE_TARGET: Duration = Duration::from_millis(20);
const LIVE_COUNT_TARGET: Duration = Duration::from_millis(10);
const LOOKUP_TARGET: Duration = Duration::from_millis(5);
const CAMPAIGN_PREVIEW_TARGET: Duration = Duration::from_millis(50);

/// Every sample's random draw comes from this seed.
const SEED: u64 = 42;

/// A saved segment of the account: its workload's name and rule.
pub struct Saved {
    pub name: String,
    pub id: i64,
    pub rule: Value,
}

/// What the timed paths share.
pub struct Ctx<'a> {
    pub api: &'a Api,
    pub panel: &'a Panel,
    pub population: &'a Population,
    pub segments: &'a [Saved],
    pub samples: usize,
}

impl Ctx<'_> {
    /// A number below `n` for sample `i` of the path `path`: the same in every run.
    fn pick(&self, path: u64, i: usize, n: usize) -> usize {
        Mix::new(SEED ^ path, i as u64).below(n as u64) as usize
    }

    fn segment(&self, i: usize) -> &Saved {
        &self.segments[i % self.segments.len()]
    }
}

fn row(path: impl Into<String>, latencies: Latencies, target: Duration) -> PathRow {
    let path = path.into();
    tracing::info!(
        path,
        median = %fmt_duration(latencies.median()),
        p99 = %fmt_duration(latencies.p99()),
        "timed"
    );
    PathRow {
        path,
        latencies,
        target,
    }
}

/// The panel's paths and the API's reads beside them.
pub async fn panel_paths(ctx: &Ctx<'_>) -> anyhow::Result<Vec<PathRow>> {
    let (api, panel, n) = (ctx.api, ctx.panel, ctx.samples);
    let mut rows = vec![row(
        "builder open (GET /panel/segments/new, its script and style, then its value suggestions and first live count)",
        builder_open(ctx).await?,
        PAGE_TARGET,
    )];
    for s in ctx.segments {
        let body = json!({ "rule": s.rule });
        let body = &body;
        let latencies = sample(n, move |_| async move {
            let answer = panel.post("/panel/api/preview", body).await?;
            anyhow::ensure!(
                answer["valid"] == json!(true)
                    && answer["count"].is_u64()
                    && answer["reachable"].is_object(),
                "the live count answered {answer}"
            );
            anyhow::Ok(())
        })
        .await?;
        rows.push(row(
            format!(
                "live count with reach: {} (POST /panel/api/preview)",
                s.name
            ),
            latencies,
            LIVE_COUNT_TARGET,
        ));
    }

    let latencies = sample(n, move |_| async move {
        panel.page("/panel/segments").await?;
        anyhow::Ok(())
    })
    .await?;
    rows.push(row(
        "segment list (GET /panel/segments)",
        latencies,
        PAGE_TARGET,
    ));
    let latencies = sample(n, move |_| async move {
        api.get("/segments").await?;
        anyhow::Ok(())
    })
    .await?;
    rows.push(row(
        "segment list (GET /api/v1/segments)",
        latencies,
        PAGE_TARGET,
    ));

    let latencies = sample(n, |i| {
        let id = ctx.segment(i).id;
        async move {
            panel.page(&format!("/panel/segments/{id}")).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    rows.push(row(
        "segment page (GET /panel/segments/{id})",
        latencies,
        PAGE_TARGET,
    ));
    let latencies = sample(n, |i| {
        let id = ctx.segment(i).id;
        async move {
            panel
                .get(&format!("/panel/api/segments/{id}/history"))
                .await?;
            anyhow::Ok(())
        }
    })
    .await?;
    rows.push(row(
        "segment page's growth chart (GET /panel/api/segments/{id}/history)",
        latencies,
        PAGE_TARGET,
    ));

    let latencies = sample(n, |i| {
        let id = ctx.segment(i).id;
        async move {
            panel.page(&format!("/panel/segments/{id}/members")).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    rows.push(row(
        "members page (GET /panel/segments/{id}/members)",
        latencies,
        PAGE_TARGET,
    ));
    let latencies = sample(n, |i| {
        let id = ctx.segment(i).id;
        async move {
            api.get(&format!("/segments/{id}/members?limit=100"))
                .await?;
            anyhow::Ok(())
        }
    })
    .await?;
    rows.push(row(
        "members page (GET /api/v1/segments/{id}/members?limit=100)",
        latencies,
        PAGE_TARGET,
    ));

    rows.extend(contact_search(ctx).await?);
    rows.extend(explain(ctx).await?);
    Ok(rows)
}

/// Opening the builder as a browser does: the page (with the builder's catalog in it),
/// its script and style at once, then at once the value suggestions of the first
/// condition's field and the first live count (`panel.js`: a new builder starts with one
/// condition on the first field, its first operator and no value yet).
async fn builder_open(ctx: &Ctx<'_>) -> anyhow::Result<Latencies> {
    let panel = ctx.panel;
    let fields = ctx.api.get("/fields").await?;
    let first = &fields["items"][0];
    let key = first["key"].as_str().unwrap_or("email");
    let field_type = first["type"].as_str().unwrap_or("text");
    let condition = if field_type == "boolean" {
        json!({"field": key, "op": "is_true"})
    } else {
        json!({"field": key, "op": "equals", "value": ""})
    };
    let body = json!({"rule": {"all": [condition]}});
    let values = (field_type == "text").then(|| format!("/panel/api/values?field={}", encode(key)));
    let (body, values) = (&body, &values);
    sample(ctx.samples, move |_| async move {
        let page = panel.page("/panel/segments/new").await?;
        anyhow::ensure!(
            page.contains("builder-catalog"),
            "the builder page has no catalog"
        );
        let (script, style) = tokio::join!(
            panel.page("/panel/assets/panel.js"),
            panel.page("/panel/assets/panel.css")
        );
        script?;
        style?;
        let suggestions = async {
            match values {
                Some(path) => panel.get(path).await.map(Some),
                None => Ok(None),
            }
        };
        let (suggested, counted) =
            tokio::join!(suggestions, panel.post("/panel/api/preview", body));
        suggested?;
        counted?;
        anyhow::Ok(())
    })
    .await
}

/// What is searched for, from the contact drawn.
type SearchFor = fn(&Ctx, usize) -> String;

/// The contact search from the start of an e-mail address, an external id and a text
/// field's value, each of a contact drawn at random.
async fn contact_search(ctx: &Ctx<'_>) -> anyhow::Result<Vec<PathRow>> {
    let contacts = ctx.population.contacts;
    let kinds: [(&str, u64, SearchFor); 3] = [
        ("an e-mail address", 1, |_, c| {
            let email = Population::email(c);
            let local = email.split('@').next().unwrap_or(&email);
            local.chars().take(7).collect()
        }),
        ("an external id", 2, |ctx, c| {
            ctx.population.external_id(c).chars().take(6).collect()
        }),
        ("a text field's value (city)", 3, |_, c| {
            let mut city = Population::city(c as u64 % 2_000);
            city.pop();
            city
        }),
    ];
    let panel = ctx.panel;
    let mut rows = Vec::new();
    for (what, tag, query) in kinds {
        let latencies = sample(ctx.samples, |i| {
            let q = query(ctx, ctx.pick(tag, i, contacts));
            async move {
                panel
                    .page(&format!("/panel/contacts?q={}", encode(&q)))
                    .await?;
                anyhow::Ok(())
            }
        })
        .await?;
        rows.push(row(
            format!("contact search from the start of {what} (GET /panel/contacts?q=…)"),
            latencies,
            LOOKUP_TARGET,
        ));
    }
    Ok(rows)
}

/// "Why is this contact in or out", the contact named by its external id or its e-mail
/// address, the segment cycling through the saved ones.
async fn explain(ctx: &Ctx<'_>) -> anyhow::Result<Vec<PathRow>> {
    let contacts = ctx.population.contacts;
    let panel = ctx.panel;
    let by_external_id = sample(ctx.samples, |i| {
        let contact = ctx.population.external_id(ctx.pick(4, i, contacts));
        let id = ctx.segment(i).id;
        async move {
            explained(panel, id, &contact).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    let by_email = sample(ctx.samples, |i| {
        // The first contact from the one drawn on that has an e-mail address.
        let drawn = ctx.pick(5, i, contacts);
        let c = (drawn..contacts + drawn)
            .map(|c| c % contacts)
            .find(|&c| ctx.population.has_email(c))
            .unwrap_or(drawn);
        let (contact, id) = (Population::email(c), ctx.segment(i).id);
        async move {
            explained(panel, id, &contact).await?;
            anyhow::Ok(())
        }
    })
    .await?;
    Ok(vec![
        row(
            "explain, contact by external id (GET /panel/api/segments/{id}/explain?contact=…)",
            by_external_id,
            LOOKUP_TARGET,
        ),
        row(
            "explain, contact by e-mail (GET /panel/api/segments/{id}/explain?contact=…)",
            by_email,
            LOOKUP_TARGET,
        ),
    ])
}

async fn explained(panel: &Panel, segment: i64, contact: &str) -> anyhow::Result<()> {
    let answer = panel
        .get(&format!(
            "/panel/api/segments/{segment}/explain?contact={}",
            encode(contact)
        ))
        .await?;
    anyhow::ensure!(answer["matched"].is_boolean(), "explain answered {answer}");
    Ok(())
}

/// For each saved-segment workload: the API's count and preview, and beside them the
/// engine's count (`Index::count`) and evaluation (`Index::evaluate`, its length) on the
/// server's own index, one read lock each as the server takes it, with the rule parsed
/// as the server parses it.
pub async fn workload_rows(
    ctx: &Ctx<'_>,
    server: &Server,
    account: &Account,
) -> anyhow::Result<Vec<WorkloadRow>> {
    let (api, n) = (ctx.api, ctx.samples);
    let idx = {
        let (indexes, account) = (server.state().index.clone(), account.clone());
        server
            .run(async move { indexes.of(&account).await })
            .await??
    };
    let (catalog, _) = {
        let (store, id) = (server.state().store.clone(), account.id);
        server
            .run(async move { load_catalog(store.as_ref(), id).await })
            .await??
    };
    let zone = TimeZone::get(&account.time_zone)?;
    let mut rows = Vec::new();
    for s in ctx.segments {
        let id = s.id;
        let rule = parse_rule(&s.rule, "rule", &catalog, None)
            .map_err(|issues| anyhow::anyhow!("workload {}: {issues:?}", s.name))?;
        let api_count = sample(n, move |_| async move {
            api.get(&format!("/segments/{id}/count")).await?;
            anyhow::Ok(())
        })
        .await?;
        let (members, engine_count) = {
            let idx = idx.clone();
            tokio::task::spawn_blocking(move || {
                let members = idx.read(|index| index.count(id));
                let times = (0..n)
                    .map(|_| {
                        idx.read(|index| {
                            let started = Instant::now();
                            std::hint::black_box(index.count(std::hint::black_box(id)));
                            started.elapsed()
                        })
                    })
                    .collect();
                (members, Latencies::new(times))
            })
            .await?
        };
        // The API's preview and the engine's evaluation taken in turns, so that both
        // meet the same background work (refresh, snapshot saves, compaction) and their
        // difference is the API's overhead.
        let body = json!({ "rule": s.rule });
        let (mut api_times, mut engine_times) = (Vec::new(), Vec::new());
        for i in 0..=n {
            let started = Instant::now();
            api.post("/segments/preview", &body).await?;
            let api_time = started.elapsed();
            let (idx, zone, rule) = (idx.clone(), zone.clone(), rule.clone());
            let engine_time = tokio::task::spawn_blocking(move || {
                let clock = RuleClock::new(Timestamp::now(), &zone);
                idx.read(|index| {
                    let started = Instant::now();
                    std::hint::black_box(index.evaluate(&rule, &clock).len());
                    started.elapsed()
                })
            })
            .await?;
            // The first round is untimed, as in `sample`.
            if i > 0 {
                api_times.push(api_time);
                engine_times.push(engine_time);
            }
        }
        let (api_preview, engine_preview) =
            (Latencies::new(api_times), Latencies::new(engine_times));
        tracing::info!(
            workload = s.name,
            api_count = %fmt_duration(api_count.median()),
            api_preview = %fmt_duration(api_preview.median()),
            engine_preview = %fmt_duration(engine_preview.median()),
            "timed"
        );
        rows.push(WorkloadRow {
            name: s.name.to_owned(),
            members,
            api_count,
            engine_count,
            api_preview,
            engine_preview,
        });
    }
    Ok(rows)
}

/// A campaign (SMS) to the largest saved segment, created through the API, and its
/// audience preview timed. Returns the campaign, the row, and the audience's description.
pub async fn campaign_preview(ctx: &Ctx<'_>) -> anyhow::Result<(i64, PathRow, String)> {
    let api = ctx.api;
    let list = api.get("/segments").await?;
    let largest = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .max_by_key(|s| s["count"].as_u64().unwrap_or(0))
        .ok_or_else(|| anyhow::anyhow!("no saved segment to send a campaign to"))?;
    let (segment, members) = (int(largest, "id")?, int(largest, "count")?);
    let name = ctx
        .segments
        .iter()
        .find(|s| s.id == segment)
        .map_or("?", |s| s.name.as_str());
    let campaign = api
        .post(
            "/campaigns",
            &json!({"name": "bench paths: the largest audience", "channel": "sms",
                    "content": {"text": "segmentd bench"}, "targets": [segment]}),
        )
        .await?;
    let id = int(&campaign, "id")?;
    let path = format!("/campaigns/{id}/preview");
    let path = &path;
    let latencies = sample(ctx.samples, |_| async move {
        let answer = api.post(path, &json!({})).await?;
        int(&answer, "recipients").map(|_| ())
    })
    .await?;
    let recipients = int(&api.post(path, &json!({})).await?, "recipients")?;
    let audience = format!(
        "{} SMS recipients of \"{name}\", {} members",
        fmt_count(recipients as u64),
        fmt_count(members as u64)
    );
    let row = row(
        format!("campaign audience preview ({audience}; POST /api/v1/campaigns/{{id}}/preview)"),
        latencies,
        CAMPAIGN_PREVIEW_TARGET,
    );
    Ok((id, row, audience))
}
