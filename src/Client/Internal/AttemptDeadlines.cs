namespace HookBroker.Client.Internal;

/// <summary>
/// Times out the raise attempts that share one timeout (every attempt of a client but its wait-mode raises) with one
/// timer, instead of a timer per attempt. Attempts are tracked in the order they start, which is also the order of
/// their deadlines, so the timer only ever needs the oldest one: it is armed for the oldest attempt's deadline, fails
/// what is due when it fires, and re-arms for the next. Finished attempts leave the list at once (<see cref="Untrack"/>).
/// </summary>
internal sealed class AttemptDeadlines : IDisposable
{
    private readonly TimeProvider time;
    private readonly long timeoutTicks;
    private readonly Lock gate = new();
    private readonly ITimer timer;
    private Node? head;
    private Node? tail;
    private long armedFor = long.MaxValue;

    /// <param name="timeout">The timeout every tracked attempt has.</param>
    /// <param name="time">The clock.</param>
    public AttemptDeadlines(TimeSpan timeout, TimeProvider time)
    {
        Timeout = timeout;
        this.time = time;
        timeoutTicks = (long)(timeout.TotalSeconds * time.TimestampFrequency);
        timer = time.CreateTimer(static state => ((AttemptDeadlines)state!).OnDue(), this, System.Threading.Timeout.InfiniteTimeSpan, System.Threading.Timeout.InfiniteTimeSpan);
    }

    /// <summary>The timeout of the attempts tracked here.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>Starts the clock of an attempt: its <see cref="Node.OnTimeout"/> runs once <see cref="Timeout"/> has passed, unless untracked first.</summary>
    public void Track(Node node)
    {
        lock (gate)
        {
            node.Deadline = time.GetTimestamp() + timeoutTicks;
            node.Previous = tail;
            node.Next = null;
            node.Tracked = true;
            if (tail is null)
            {
                head = node;
            }
            else
            {
                tail.Next = node;
            }

            tail = node;
            if (armedFor == long.MaxValue)
            {
                Arm(node.Deadline);
            }
        }
    }

    /// <summary>The attempt finished: it no longer times out.</summary>
    public void Untrack(Node node)
    {
        lock (gate)
        {
            Unlink(node);
        }
    }

    /// <inheritdoc />
    public void Dispose() => timer.Dispose();

    private void OnDue()
    {
        List<Node>? due = null;
        lock (gate)
        {
            armedFor = long.MaxValue;
            var now = time.GetTimestamp();
            while (head is { } oldest && oldest.Deadline <= now)
            {
                Unlink(oldest);
                (due ??= []).Add(oldest);
            }

            if (head is { } next)
            {
                Arm(next.Deadline);
            }
        }

        if (due is not null)
        {
            foreach (var node in due)
            {
                node.OnTimeout();
            }
        }
    }

    private void Arm(long deadline)
    {
        armedFor = deadline;
        var wait = deadline - time.GetTimestamp();
        timer.Change(wait > 0 ? TimeSpan.FromSeconds((double)wait / time.TimestampFrequency) : TimeSpan.Zero, System.Threading.Timeout.InfiniteTimeSpan);
    }

    private void Unlink(Node node)
    {
        if (!node.Tracked)
        {
            return;
        }

        node.Tracked = false;
        if (node.Previous is null)
        {
            head = node.Next;
        }
        else
        {
            node.Previous.Next = node.Next;
        }

        if (node.Next is null)
        {
            tail = node.Previous;
        }
        else
        {
            node.Next.Previous = node.Previous;
        }

        node.Previous = null;
        node.Next = null;
    }

    /// <summary>An attempt with a deadline: what it does when the deadline passes.</summary>
    public abstract class Node
    {
        internal Node? Previous { get; set; }

        internal Node? Next { get; set; }

        internal bool Tracked { get; set; }

        internal long Deadline { get; set; }

        /// <summary>Called once, outside the tracker's lock, when the deadline passed before <see cref="Untrack"/>.</summary>
        protected internal abstract void OnTimeout();
    }
}
