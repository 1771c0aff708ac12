using System.Runtime.CompilerServices;

namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// What one worker's filter decided for the labels seen so far. The lease script takes the accepted and rejected
/// labels and hands back the ones it has not been told about, so a filter (C# code) is asked once per label.
/// </summary>
internal sealed class RedisLabelDecisions
{
    private static readonly ConditionalWeakTable<ILabelFilter, RedisLabelDecisions> ByFilter = [];

    private readonly Lock _lock = new();
    private readonly HashSet<string> _accepted = new(StringComparer.Ordinal);
    private readonly HashSet<string> _rejected = new(StringComparer.Ordinal);
    private string[] _acceptedSnapshot = [];
    private string[] _rejectedSnapshot = [];

    /// <summary>The decisions kept for <paramref name="filter"/> (as long as the filter lives).</summary>
    public static RedisLabelDecisions For(ILabelFilter filter) => ByFilter.GetValue(filter, _ => new RedisLabelDecisions());

    public (string[] Accepted, string[] Rejected) Snapshot()
    {
        lock (_lock)
        {
            return (_acceptedSnapshot, _rejectedSnapshot);
        }
    }

    /// <summary>Asks the filter about labels it was not asked about before.</summary>
    public void Decide(ILabelFilter filter, IEnumerable<string> labels)
    {
        lock (_lock)
        {
            foreach (var label in labels)
            {
                if (_accepted.Contains(label) || _rejected.Contains(label))
                {
                    continue;
                }

                (filter.Matches(label) ? _accepted : _rejected).Add(label);
            }

            _acceptedSnapshot = [.. _accepted];
            _rejectedSnapshot = [.. _rejected];
        }
    }
}
