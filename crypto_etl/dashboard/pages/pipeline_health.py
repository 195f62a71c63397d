"""Pipeline health: recent runs, rows quarantined, and how fresh each table is."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from crypto_etl import formatting as fmt
from crypto_etl.dashboard import client as api
from crypto_etl.dashboard.ui import age_text, frame, load, seconds_since, show, style
from crypto_etl.run_status import RunStatus

RUNS = 50
# Runs that stored nothing of their own: failed, or whose process vanished mid-way.
BROKEN = (RunStatus.FAILED, RunStatus.ABANDONED)

st.title("Pipeline health")
runs_body = load(api.runs, limit=RUNS)
fresh_body = load(api.freshness)
rejected_body = load(api.rejected_rows, limit=RUNS)

# -- freshness ------------------------------------------------------------------------------------
tables = frame(fresh_body["data"], times=("newest",))
stale = tables[tables["fresh"].eq(False)]
cadence = fresh_body["expected_cadence_seconds"]
if tables["newest"].isna().all():
    st.info(
        "The database holds no data yet: the pipeline has not loaded anything.",
        icon=":material/info:",
    )
elif stale.empty:
    st.success(
        f"Data is fresh: every scheduled table was updated within two cadences "
        f"({fmt.duration(2 * cadence)}).",
        icon=":material/check_circle:",
    )
else:
    late = ", ".join(
        f"{row.table} ({fmt.duration(row.age_seconds)} old)" for row in stale.itertuples()
    )
    st.warning(
        f"Stale data: {late}; expected at most {fmt.duration(2 * cadence)} with a run every "
        f"{fmt.duration(cadence)}. Check the pipeline's log.",
        icon=":material/schedule:",
    )

# -- runs -----------------------------------------------------------------------------------------
runs = frame(runs_body["data"], times=("started_at", "finished_at"))
if runs.empty:
    st.info(
        "No pipeline runs recorded yet: start one with `python etl.py run`.", icon=":material/info:"
    )
else:
    last = runs.iloc[0]
    succeeded = runs[runs["status"] == RunStatus.SUCCESS]
    figures = st.columns(4)
    figures[0].metric(
        "Last run",
        last["status"],
        help=f"Run {last['id']} ({last['command']}), started "
        f"{last['started_at']:%Y-%m-%d %H:%M} UTC",
    )
    figures[1].metric(
        "Last successful run",
        age_text(seconds_since(succeeded.iloc[0]["started_at"].isoformat()))
        if not succeeded.empty
        else "never",
    )
    figures[2].metric(
        f"Failed runs (last {len(runs)})",
        int(runs["status"].isin(BROKEN).sum()),
        help="failed, or abandoned: the run's process vanished (killed, host down) mid-way",
    )
    figures[3].metric(f"Rows quarantined (last {len(runs)} runs)", int(runs["rows_rejected"].sum()))

    ordered = runs.sort_values("started_at")
    chart = go.Figure()
    chart.add_trace(
        go.Bar(
            x=ordered["started_at"],
            y=ordered["rows_loaded"],
            name="Rows loaded",
            marker_color="#3b75af",
            customdata=ordered[["id", "status"]],
            hovertemplate="Run %{customdata[0]} (%{customdata[1]}): %{y} loaded<extra></extra>",
        )
    )
    chart.add_trace(
        go.Bar(
            x=ordered["started_at"],
            y=ordered["rows_rejected"],
            name="Rows quarantined",
            marker_color="#d73027",
        )
    )
    failed = ordered[ordered["status"].isin(BROKEN)]
    if not failed.empty:
        chart.add_trace(
            go.Scatter(
                x=failed["started_at"],
                y=[0] * len(failed),
                mode="markers",
                marker={"symbol": "x", "size": 12, "color": "#000000"},
                name="Failed run",
                text=failed["error_message"],
                customdata=failed[["status"]],
                hovertemplate="%{customdata[0]}: %{text}<extra></extra>",
            )
        )
    chart.update_layout(barmode="stack")
    chart.update_xaxes(title_text="Run start (UTC)")
    chart.update_yaxes(title_text="Rows per run")
    show(style(chart, f"Rows per run, last {len(runs)} runs", height=380))

    st.subheader("Recent runs")
    table = runs
    st.dataframe(
        table[
            [
                "id",
                "command",
                "status",
                "error_message",
                "started_at",
                "duration_seconds",
                "rows_extracted",
                "rows_loaded",
                "rows_rejected",
                "rows_skipped",
            ]
        ],
        column_config={
            "id": st.column_config.NumberColumn("Run", format="%d"),
            "command": "Command",
            "status": "Status",
            "started_at": st.column_config.DatetimeColumn(
                "Started (UTC)", format="YYYY-MM-DD HH:mm:ss"
            ),
            "duration_seconds": st.column_config.NumberColumn("Duration (s)", format="%.1f"),
            "rows_extracted": "Extracted",
            "rows_loaded": "Loaded",
            "rows_rejected": "Quarantined",
            "rows_skipped": "Already stored",
            "error_message": st.column_config.TextColumn("Failure", width="medium"),
        },
        hide_index=True,
        width="stretch",
    )

    st.subheader("Rejected rows")
    rejected = frame(rejected_body["data"], times=("rejected_at",))
    if rejected.empty:
        st.success("No row has been quarantined.", icon=":material/check_circle:")
    else:
        st.caption(
            f"{rejected_body['count']} quarantined row(s) in all, the newest {len(rejected)} "
            "below; each is kept whole, with the rule it broke, in the `rejected_rows` table."
        )
        st.dataframe(
            rejected[["rejected_at", "run_id", "coin_id", "rule", "reason"]],
            column_config={
                "rejected_at": st.column_config.DatetimeColumn(
                    "Rejected (UTC)", format="YYYY-MM-DD HH:mm"
                ),
                "run_id": st.column_config.NumberColumn("Run", format="%d"),
                "coin_id": "Coin",
                "rule": "Rule broken",
                "reason": st.column_config.TextColumn("Reason", width="large"),
            },
            hide_index=True,
            width="stretch",
        )

st.subheader("Freshness by table")
st.dataframe(
    pd.DataFrame(
        {
            "Table": tables["table"],
            "Newest": tables["newest"],
            "Age": [fmt.duration(a) for a in tables["age_seconds"]],
            "Allowed age": [
                "not scheduled" if m is None or pd.isna(m) else fmt.duration(m)
                for m in tables["max_age_seconds"]
            ],
            "State": [
                "not scheduled" if f is None or pd.isna(f) else "fresh" if f else "STALE"
                for f in tables["fresh"]
            ],
        }
    ),
    column_config={
        "Newest": st.column_config.DatetimeColumn("Newest (UTC)", format="YYYY-MM-DD HH:mm")
    },
    hide_index=True,
    width="stretch",
)
