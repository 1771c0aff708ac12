namespace HookBroker.Broker.Storage.Redis;

/// <summary>
/// Per group, which partitions may have work (ready or delayed deliveries), so a lease asks only those. A hint is only
/// an optimisation: it is set by every append, release and notice from other nodes, and cleared only when a lease
/// found the partition empty and nothing was announced for it meanwhile.
/// </summary>
internal sealed class RedisPartitionHints(int partitions)
{
    private readonly Lock _lock = new();
    private readonly bool[] _mayHaveWork = Enumerable.Repeat(true, partitions).ToArray();
    private readonly long[] _versions = new long[partitions];
    private int _next;

    public void Mark(int partition)
    {
        lock (_lock)
        {
            _mayHaveWork[partition] = true;
            _versions[partition]++;
        }
    }

    public void MarkAll()
    {
        lock (_lock)
        {
            for (var p = 0; p < _mayHaveWork.Length; p++)
            {
                _mayHaveWork[p] = true;
                _versions[p]++;
            }
        }
    }

    /// <summary>The partitions to ask, starting after the one asked first last time (fair across partitions), with
    /// their versions.</summary>
    public List<(int Partition, long Version)> Candidates()
    {
        lock (_lock)
        {
            var list = new List<(int, long)>();
            var start = _next;
            _next = (_next + 1) % _mayHaveWork.Length;
            for (var i = 0; i < _mayHaveWork.Length; i++)
            {
                var p = (start + i) % _mayHaveWork.Length;
                if (_mayHaveWork[p])
                {
                    list.Add((p, _versions[p]));
                }
            }

            return list;
        }
    }

    /// <summary>The partition had no work when asked at <paramref name="version"/>: forget it unless marked since.</summary>
    public void ClearIfUnchanged(int partition, long version)
    {
        lock (_lock)
        {
            if (_versions[partition] == version)
            {
                _mayHaveWork[partition] = false;
            }
        }
    }
}
