//! Merges the scenario parts of one run into `report.json` (everything, machine-readable)
//! and `report.md` (the summary table — goal, measured, baseline, ratio — then each
//! scenario's details), naming the commit, the build, the machine and its load.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde_json::json;

use crate::scenario::{Part, Scenario};
use crate::stats::load_average;

/// Reads `<dir>/<scenario>.json` for every scenario present, writes the two reports to `out`.
pub(crate) fn write(
    dir: &Path,
    out: &Path,
    commit: &str,
    profile: &str,
    smoke: bool,
) -> anyhow::Result<()> {
    let order = [
        Scenario::Delivery,
        Scenario::Peer,
        Scenario::Fanout,
        Scenario::Idle,
        Scenario::Gateway,
        Scenario::Auth,
        Scenario::History,
    ];
    let mut parts: Vec<Part> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        let part: Part =
            serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
        parts.push(part);
    }
    if parts.is_empty() {
        anyhow::bail!("no scenario results in {}", dir.display());
    }
    parts.sort_by_key(|p| {
        (
            order.iter().position(|s| *s == p.scenario),
            p.variant.clone(),
        )
    });
    let machine = machine();
    let generated_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let report = json!({
        "generated_at": generated_at,
        "commit": commit,
        "profile": profile,
        "smoke": smoke,
        "machine": machine,
        "scenarios": parts,
    });
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(&report)?)?;
    std::fs::write(
        out.join("report.md"),
        markdown(&parts, &machine, commit, profile, smoke, &generated_at),
    )?;
    println!(
        "wrote {} and {}",
        out.join("report.json").display(),
        out.join("report.md").display()
    );
    Ok(())
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kib = crate::stats::proc_meminfo_kib("MemTotal:");
    json!({
        "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "cpu": cpu,
        "memory_gib": mem_kib.map(|k| (k as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "load_average_at_report": load_average(),
    })
}

fn load(l: &[f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn markdown(
    parts: &[Part],
    machine: &serde_json::Value,
    commit: &str,
    profile: &str,
    smoke: bool,
    generated_at: &str,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Minute benchmarks\n");
    if smoke {
        let _ = writeln!(
            md,
            "> **Smoke run**: every scenario for seconds with small counts, to keep the suite from rotting. The numbers below are not measurements and are not judged.\n"
        );
    }
    let _ = writeln!(
        md,
        "- generated {generated_at}, commit `{commit}`, {profile} build\n- machine: {} cores ({}), {} GiB, Linux {}\n- load average (1/5/15 min): {} at the start of the first scenario, {} at the end of the last, {} now",
        machine["cores"],
        machine["cpu"].as_str().unwrap_or("?"),
        machine["memory_gib"],
        machine["kernel"].as_str().unwrap_or("?"),
        parts
            .first()
            .map(|p| load(&p.load_before))
            .unwrap_or_default(),
        parts
            .last()
            .map(|p| load(&p.load_after))
            .unwrap_or_default(),
        machine["load_average_at_report"]
            .as_array()
            .map(|a| a
                .iter()
                .map(|v| format!("{:.2}", v.as_f64().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
    );
    let _ = writeln!(
        md,
        "- everything on loopback; the load generator shares the machine with the server\n"
    );
    let _ = writeln!(md, "## Summary\n");
    let _ = writeln!(
        md,
        "| scenario | metric | goal | measured | baseline (same run) | ratio to baseline |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for p in parts {
        for r in &p.outcome.summary {
            let goal = match (&r.goal, r.goal_met, smoke) {
                (Some(g), _, true) => format!("{g} (not judged)"),
                (Some(g), Some(true), false) => format!("{g}: met"),
                (Some(g), Some(false), false) => format!("{g}: **missed**"),
                (Some(g), None, false) => g.clone(),
                (None, _, _) => "-".into(),
            };
            let _ = writeln!(
                md,
                "| {:?} | {} | {} | {} | {} | {} |",
                p.scenario,
                cell(&r.metric),
                cell(&goal),
                cell(&r.measured),
                cell(r.baseline.as_deref().unwrap_or("-")),
                r.ratio.map_or("-".into(), |x| format!("x{x:.2}")),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nRatios are measured / baseline: for latency and memory, how many times the floor; for throughput, the share of the baseline's rate.\n"
    );
    side_by_side(&mut md, parts);
    for p in parts {
        match &p.variant {
            Some(v) => {
                let _ = writeln!(md, "## {:?} ({v})\n", p.scenario);
            }
            None => {
                let _ = writeln!(md, "## {:?}\n", p.scenario);
            }
        }
        let _ = writeln!(
            md,
            "- system: {}\n- baseline: {}\n- ran {:.0} s from {}; load average {} before, {} after\n",
            p.system,
            p.outcome.baseline,
            p.seconds,
            p.started_at,
            load(&p.load_before),
            load(&p.load_after)
        );
        for t in &p.outcome.tables {
            let _ = writeln!(md, "{}\n", t.title);
            let _ = writeln!(md, "| {} |", t.columns.join(" | "));
            let _ = writeln!(md, "|{}", "---|".repeat(t.columns.len()));
            for row in &t.rows {
                let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
                let _ = writeln!(md, "| {} |", cells.join(" | "));
            }
            let _ = writeln!(md);
        }
        for n in &p.outcome.notes {
            let _ = writeln!(md, "- {n}");
        }
        let _ = writeln!(md);
    }
    md
}

/// One delivery level as the parts store it (`delivery` and `peer-matrix` alike).
fn level_cell(l: &serde_json::Value) -> String {
    let ms = |k: &str| crate::stats::fmt_ms(l["latency"][k].as_f64().unwrap_or(f64::NAN));
    let lost = l["sent"].as_u64().unwrap_or(0)
        - l["received"]
            .as_u64()
            .unwrap_or(0)
            .min(l["sent"].as_u64().unwrap_or(0));
    let abandoned = l["load"]
        .as_str()
        .filter(|x| !x.starts_with("max"))
        .and_then(|x| x.split_once(" ("))
        .map(|(_, note)| format!(" ({note}"))
        .unwrap_or_default();
    let lost = if lost > 0 {
        format!(", {lost} not delivered")
    } else {
        String::new()
    };
    if l["load"].as_str().unwrap_or("").starts_with("max") {
        format!(
            "{:.0} msg/s delivered (p99 {}{lost})",
            l["delivered_rate"]
                .as_f64()
                .unwrap_or(f64::NAN)
                .min(l["rate"].as_f64().unwrap_or(f64::NAN)),
            ms("p99_ms")
        )
    } else {
        format!("{} / {}{lost}{abandoned}", ms("p50_ms"), ms("p99_ms"))
    }
}

/// The row a level belongs in: its rate (`200 msg/s`, without what a note in parentheses
/// adds) or the closed loop.
fn load_key(load: &str) -> String {
    if load.starts_with("max") {
        "max (closed loop)".into()
    } else {
        load.split(" (").next().unwrap_or(load).to_owned()
    }
}

/// When a run measured a peer: one table of delivery latency per load level, Minute's
/// deployments, each peer and the bare echo floor in columns.
fn side_by_side(md: &mut String, parts: &[Part]) {
    if !parts.iter().any(|p| p.scenario == Scenario::Peer) {
        return;
    }
    let mut columns: Vec<(String, &serde_json::Value)> = Vec::new();
    let mut floor = None;
    for p in parts {
        let data = &p.outcome.data;
        match p.scenario {
            Scenario::Delivery => {
                let label = match &p.variant {
                    Some(v) => format!("minute ({v})"),
                    None => "minute all-in-one".into(),
                };
                columns.push((label, &data["minute"]));
                if floor.is_none() {
                    floor = Some(("bare WebSocket echo (floor)".to_owned(), &data["baseline"]));
                }
            }
            Scenario::Peer => {
                let label = p.variant.clone().unwrap_or_else(|| "peer".into());
                columns.push((format!("peer: {label}"), &data["levels"]));
                if floor.is_none() && data["baseline"].as_array().is_some_and(|a| !a.is_empty()) {
                    floor = Some(("bare WebSocket echo (floor)".to_owned(), &data["baseline"]));
                }
            }
            _ => {}
        }
    }
    columns.extend(floor);
    let mut loads: Vec<String> = Vec::new();
    for (_, levels) in &columns {
        for l in levels.as_array().into_iter().flatten() {
            let key = load_key(l["load"].as_str().unwrap_or("?"));
            if !loads.contains(&key) {
                loads.push(key);
            }
        }
    }
    let _ = writeln!(
        md,
        "## Delivery side by side: Minute, its peers and the floor\n"
    );
    let _ = writeln!(
        md,
        "Send-to-receive latency p50 / p99 from the due time (open loop), or the max delivered rate (closed loop), each measured in this run; details in each scenario's section.\n"
    );
    let _ = writeln!(
        md,
        "| load | {} |",
        columns
            .iter()
            .map(|(c, _)| cell(c))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(md, "|---|{}", "---|".repeat(columns.len()));
    for load in &loads {
        let cells: Vec<String> = columns
            .iter()
            .map(|(_, levels)| {
                levels
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|l| load_key(l["load"].as_str().unwrap_or("")) == *load)
                    .map_or_else(|| "-".into(), level_cell)
            })
            .collect();
        let _ = writeln!(md, "| {load} | {} |", cells.join(" | "));
    }
    let _ = writeln!(md);
}
