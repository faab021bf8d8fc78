/// The status page's HTML: one self-contained document (inline CSS, no script, nothing fetched)
/// that reloads itself every 10 s. Every string from the snapshot is escaped: file and folder
/// names on a card can hold `<`, `&`, quotes and control characters.
enum StatusPage {
    static func html(_ status: WatchStatus, renderedAt: String = Timestamp.now()) -> String {
        let byState = status.sessionsByState
        let active = [WatchStatus.State.uploading, .failed].compactMap { s in byState[s].flatMap { $0 > 0 ? "\($0) \(label(s))" : nil } }
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta http-equiv="refresh" content="10">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>ceti watch\(active.isEmpty ? "" : ": " + active.joined(separator: ", "))</title>
            <style>\(style)</style>
            </head>
            <body>
            <header>
            <h1>ceti watch</h1>
            <p class="meta">version \(escape(status.version)) · started \(escape(status.startedAt)) · last scan \(escape(status.lastScanAt ?? "not yet")) · last success \(escape(status.lastSuccessAt ?? "none yet")) · page of \(escape(renderedAt))</p>
            </header>
            <section class="totals">
            \(total("pending", ByteSize.format(status.pendingBytes)))
            \(total("uploaded since start", ByteSize.format(status.uploadedBytes)))
            \(total("queue", "\(status.queueSize) session\(status.queueSize == 1 ? "" : "s")"))
            \(WatchStatus.State.allCases.map { total(label($0), "\(byState[$0] ?? 0)", state: $0) }.joined(separator: "\n"))
            </section>
            <h2>Devices</h2>
            \(devices(status.sessions))
            <h2>Sessions</h2>
            \(sessions(status.sessions))
            </body>
            </html>

            """
    }

    /// What the operator reads for each state, and its colour.
    static func label(_ state: WatchStatus.State) -> String {
        switch state {
        case .waiting: return "waiting for stability"
        case .incomplete: return "incomplete"
        case .uploading: return "uploading"
        case .complete: return "complete"
        case .failed: return "failed"
        case .tooOld: return "too old"
        }
    }

    private static func colour(_ state: WatchStatus.State) -> String {
        switch state {
        case .waiting: return "#8a6d00"
        case .incomplete: return "#b35c00"
        case .uploading: return "#0b5cad"
        case .complete: return "#1d7a32"
        case .failed: return "#b3261e"
        case .tooOld: return "#5f6368"
        }
    }

    /// Text for an HTML element or a quoted attribute: controls and bidi overrides made visible
    /// first (as the console shows them), then the five HTML specials.
    static func escape(_ text: String) -> String { S3XML.escape(text.printable) }

    /// States whose bytes count as pending (not yet in S3, and meant to go), as `pendingBytes`.
    private static let pendingStates: Set<WatchStatus.State> = [.waiting, .incomplete, .uploading, .failed]

    private static func total(_ name: String, _ value: String, state: WatchStatus.State? = nil) -> String {
        let mark = state.map { " style=\"border-color:\(colour($0))\"" } ?? ""
        return "<div class=\"total\"\(mark)><span class=\"value\">\(escape(value))</span><span class=\"name\">\(escape(name))</span></div>"
    }

    private static func badge(_ state: WatchStatus.State) -> String {
        "<span class=\"state state-\(state.rawValue)\" style=\"background:\(colour(state))\">\(escape(label(state)))</span>"
    }

    /// The sessions by watched root (a device, a card, a mooring): roots in the order the
    /// watcher lists them, sessions by name (dated folders in date order).
    private static func byRoot(_ sessions: [WatchStatus.Session]) -> [(root: String, sessions: [WatchStatus.Session])] {
        var roots: [String] = []
        var groups: [String: [WatchStatus.Session]] = [:]
        for s in sessions {
            if groups[s.root] == nil { roots.append(s.root) }
            groups[s.root, default: []].append(s)
        }
        return roots.map { ($0, (groups[$0] ?? []).sorted { $0.name < $1.name }) }
    }

    private static func devices(_ sessions: [WatchStatus.Session]) -> String {
        let groups = byRoot(sessions)
        guard !groups.isEmpty else { return "<p class=\"empty\">No watched root holds a session yet.</p>" }
        let rows = groups.map { group -> String in
            let pending = group.sessions.filter { pendingStates.contains($0.state) }.reduce(Int64(0)) { $0 + $1.bytes }
            let states = WatchStatus.State.allCases.compactMap { state -> String? in
                let n = group.sessions.filter { $0.state == state }.count
                return n == 0 ? nil : "\(n) \(escape(label(state)))"
            }
            return "<tr><td class=\"path\">\(escape(group.root))</td><td class=\"num\">\(group.sessions.count)</td>"
                + "<td>\(states.joined(separator: ", "))</td><td class=\"num\">\(escape(ByteSize.format(pending)))</td></tr>"
        }
        return """
            <table class="devices">
            <thead><tr><th>Root</th><th>Sessions</th><th>By state</th><th>Pending</th></tr></thead>
            <tbody>
            \(rows.joined(separator: "\n"))
            </tbody>
            </table>
            """
    }

    /// One table, a heading row per root (roots are long paths: not repeated on every row).
    private static func sessions(_ sessions: [WatchStatus.Session]) -> String {
        guard !sessions.isEmpty else { return "<p class=\"empty\">No sessions yet.</p>" }
        let groups = byRoot(sessions).map { group in
            let rows = group.sessions.map { s in
                "<tr class=\"row-\(s.state.rawValue)\"><td class=\"path\">\(escape(s.name))</td><td>\(badge(s.state))</td>"
                    + "<td class=\"num\">\(s.files)</td><td class=\"num\">\(escape(ByteSize.format(s.bytes)))</td>"
                    + "<td>\(progress(s))</td><td>\(details(s))</td>"
                    + "<td class=\"time\">\(escape(s.changedAt))<br>\(escape(s.updatedAt))</td></tr>"
            }
            return "<tbody>\n<tr class=\"root\"><th colspan=\"7\">\(escape(group.root))</th></tr>\n"
                + rows.joined(separator: "\n") + "\n</tbody>"
        }
        return """
            <table class="sessions">
            <thead><tr><th>Session</th><th>State</th><th>Files</th><th>Size</th><th>Progress</th><th>Details</th><th>Changed<br>State set</th></tr></thead>
            \(groups.joined(separator: "\n"))
            </table>
            """
    }

    /// A bar while bytes are going up (also for a failed session that got part of the way).
    private static func progress(_ s: WatchStatus.Session) -> String {
        switch s.state {
        case .complete:
            return "done"
        case .uploading, .failed:
            guard s.state == .uploading || s.uploadedBytes > 0 else { return "" }
            let percent = s.bytes > 0 ? min(100, max(0, Int(Double(s.uploadedBytes) * 100 / Double(s.bytes)))) : 0
            return "<div class=\"bar\"><span style=\"width:\(percent)%\"></span></div>"
                + "<span class=\"percent\">\(percent)% · \(escape(ByteSize.format(s.uploadedBytes)))</span>"
        default:
            return ""
        }
    }

    private static func details(_ s: WatchStatus.Session) -> String {
        switch s.state {
        case .complete:
            return s.manifest.map { "<code>\(escape($0))</code>" } ?? ""
        case .failed:
            let next = s.nextAttemptAt.map { "<br><span class=\"next\">next attempt \(escape($0))</span>" } ?? ""
            return "<span class=\"error\">\(escape(s.error ?? "failed"))</span>\(next)"
        case .tooOld:
            return "older than the profile's max_age: reported, not uploaded"
        case .waiting, .incomplete, .uploading:
            return s.error.map { "<span class=\"why\">\(escape($0))</span>" } ?? ""
        }
    }

    private static let style = """
        body{font:14px/1.4 system-ui,-apple-system,"DejaVu Sans",sans-serif;margin:1.5em;color:#202124;background:#fff}
        h1{margin:0;font-size:1.5em}h2{font-size:1.15em;margin:1.4em 0 .5em}
        .meta{color:#5f6368;margin:.3em 0 1em}
        .totals{display:flex;flex-wrap:wrap;gap:.6em}
        .total{border:1px solid #dadce0;border-left-width:5px;border-radius:4px;padding:.4em .8em;min-width:7em}
        .total .value{display:block;font-size:1.3em;font-weight:600}.total .name{color:#5f6368;font-size:.9em}
        table{border-collapse:collapse;width:100%}
        th,td{border-bottom:1px solid #e8eaed;padding:.35em .6em;text-align:left;vertical-align:top}
        th{background:#f1f3f4;font-weight:600}
        td.num{text-align:right;white-space:nowrap}td.time{white-space:nowrap;color:#5f6368;font-size:.9em}
        td.path,tr.root th{font-family:"DejaVu Sans Mono",monospace;overflow-wrap:anywhere}
        tr.root th{background:#fff;padding-top:.9em;border-bottom:2px solid #dadce0}
        .state{color:#fff;border-radius:3px;padding:.1em .5em;white-space:nowrap;font-size:.9em}
        .bar{display:inline-block;width:8em;height:.7em;background:#e8eaed;border-radius:3px;overflow:hidden;margin-right:.4em}
        .bar span{display:block;height:100%;background:#0b5cad}
        .percent{white-space:nowrap}.error{color:#b3261e}.next,.why{color:#5f6368}
        code{font-size:.9em;overflow-wrap:anywhere}.empty{color:#5f6368}
        """
}
