namespace HookBroker.Tests.Infrastructure;

/// <summary>One line a broker process wrote.</summary>
/// <param name="Run">Which start of the fixture wrote it (1 for the first, 2 after the first restart...).</param>
/// <param name="IsStdErr">True for standard error.</param>
/// <param name="Text">The line.</param>
internal sealed record LogLine(int Run, bool IsStdErr, string Text)
{
    public override string ToString() => $"[run {Run}{(IsStdErr ? " stderr" : "")}] {Text}";
}

/// <summary>The last <c>capacity</c> lines of a process's output, for diagnostics; older lines are dropped and counted.</summary>
internal sealed class BoundedLog(int capacity)
{
    private readonly Queue<LogLine> lines = new();
    private readonly Lock gate = new();
    private long dropped;

    public void Add(LogLine line)
    {
        lock (gate)
        {
            if (lines.Count == capacity)
            {
                lines.Dequeue();
                dropped++;
            }

            lines.Enqueue(line);
        }
    }

    public IReadOnlyList<LogLine> Snapshot()
    {
        lock (gate)
        {
            return [.. lines];
        }
    }

    /// <summary>The last <paramref name="count"/> lines as text, with a note when earlier lines were dropped.</summary>
    public string Tail(int count)
    {
        lock (gate)
        {
            var skipped = Math.Max(0, lines.Count - count) + dropped;
            var text = string.Join('\n', lines.Skip(Math.Max(0, lines.Count - count)));
            return skipped > 0 ? $"({skipped} earlier lines not shown)\n{text}" : text;
        }
    }
}
