using System.Text;

namespace HookBroker.Broker.Storage.Sqlite;

/// <summary>
/// The few labels a workload repeats, as strings and UTF-8 bytes, so reading or writing the log does not allocate a
/// label per event. Least recently added first out; a miss just allocates.
/// </summary>
internal sealed class SqliteLabelCache
{
    private const int Capacity = 16;

    private readonly string[] _labels = new string[Capacity];
    private readonly byte[][] _utf8 = new byte[Capacity][];
    private int _count;
    private int _next;

    /// <summary>The label whose UTF-8 bytes are <paramref name="utf8"/>.</summary>
    public string Label(ReadOnlySpan<byte> utf8)
    {
        for (var i = 0; i < _count; i++)
        {
            if (utf8.SequenceEqual(_utf8[i]))
            {
                return _labels[i];
            }
        }

        var label = Encoding.UTF8.GetString(utf8);
        Add(label, utf8.ToArray());
        return label;
    }

    /// <summary>The UTF-8 bytes of <paramref name="label"/>.</summary>
    public byte[] Utf8(string label) => Utf8(label, out _);

    /// <summary>The UTF-8 bytes of <paramref name="label"/>, and the equal string the cache keeps (<paramref name="kept"/>).</summary>
    public byte[] Utf8(string label, out string kept)
    {
        for (var i = 0; i < _count; i++)
        {
            if (ReferenceEquals(label, _labels[i]) || string.Equals(label, _labels[i], StringComparison.Ordinal))
            {
                kept = _labels[i];
                return _utf8[i];
            }
        }

        var utf8 = Encoding.UTF8.GetBytes(label);
        Add(label, utf8);
        kept = label;
        return utf8;
    }

    private void Add(string label, byte[] utf8)
    {
        _labels[_next] = label;
        _utf8[_next] = utf8;
        _next = (_next + 1) % Capacity;
        _count = Math.Min(_count + 1, Capacity);
    }
}
