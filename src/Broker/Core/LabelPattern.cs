using HookBroker.Broker.Storage;

namespace HookBroker.Broker.Core;

/// <summary>A validated subscription pattern: `*` matches one `.`-separated segment, a final `&gt;` one or more.</summary>
public sealed class LabelPattern
{
    private readonly string[] _segments;
    private readonly bool _tail;

    private LabelPattern(string text)
    {
        Text = text;
        var segments = text.Split('.');
        _tail = segments[^1] == ">";
        _segments = _tail ? segments[..^1] : segments;
        IsLiteral = LabelRules.IsLiteral(text);
    }

    /// <summary>The pattern as written.</summary>
    public string Text { get; }

    /// <summary>True when the pattern has no wildcard.</summary>
    public bool IsLiteral { get; }

    /// <summary>Parses a pattern already checked with <see cref="LabelRules.CheckPattern"/>.</summary>
    public static LabelPattern Parse(string pattern)
    {
        var problem = LabelRules.CheckPattern(pattern);
        return problem is null ? new LabelPattern(pattern) : throw new ArgumentException(problem, nameof(pattern));
    }

    /// <summary>True when <paramref name="label"/> matches.</summary>
    public bool Matches(string label)
    {
        if (IsLiteral)
        {
            return string.Equals(Text, label, StringComparison.Ordinal);
        }

        // Walk the label's '.'-separated segments; position -1 means the label has no segment left.
        var position = 0;
        foreach (var segment in _segments)
        {
            if (position < 0)
            {
                return false;
            }

            var dot = label.IndexOf('.', position);
            var part = dot < 0 ? label.AsSpan(position) : label.AsSpan(position, dot - position);
            if (segment != "*" && !part.SequenceEqual(segment))
            {
                return false;
            }

            position = dot < 0 ? -1 : dot + 1;
        }

        // A tail '>' needs at least one more segment; otherwise the label must be used up.
        return _tail ? position >= 0 : position < 0;
    }
}

/// <summary>A worker's (or group's) patterns, as a filter.</summary>
public sealed class PatternSet : ILabelFilter
{
    // One set per stream and one per group: up to this many literals are compared one by one, as fast as hashing at
    // that size, without a hash set's ~200 bytes for each of 10,000 idle streams.
    private const int MaxLinearLiterals = 8;

    private readonly string[] _literals;
    private readonly HashSet<string>? _literalSet;
    private readonly LabelPattern[] _wildcards;

    /// <summary>Builds the set from validated patterns.</summary>
    public PatternSet(IEnumerable<string> patterns)
    {
        var literals = new List<string>();
        var wildcards = new List<LabelPattern>();
        foreach (var text in patterns.Distinct(StringComparer.Ordinal))
        {
            var pattern = LabelPattern.Parse(text);
            if (pattern.IsLiteral)
            {
                literals.Add(text);
            }
            else
            {
                wildcards.Add(pattern);
            }
        }

        _literals = [.. literals];
        _literalSet = _literals.Length > MaxLinearLiterals ? new HashSet<string>(_literals, StringComparer.Ordinal) : null;
        _wildcards = [.. wildcards];
        Patterns = _wildcards.Length == 0 ? _literals : [.. _literals, .. _wildcards.Select(p => p.Text)];
    }

    /// <summary>The patterns as written, deduplicated.</summary>
    public IReadOnlyList<string> Patterns { get; }

    /// <summary>True when <paramref name="patterns"/> (without duplicates) are exactly this set's patterns, in any order.</summary>
    public bool HasExactly(IReadOnlyList<string> patterns) => patterns.Count == Patterns.Count && HasAll(patterns);

    /// <summary>True when every one of <paramref name="patterns"/> is among this set's patterns.</summary>
    public bool HasAll(IReadOnlyList<string> patterns)
    {
        foreach (var pattern in patterns)
        {
            if (!HasLiteral(pattern) && !Array.Exists(_wildcards, w => string.Equals(w.Text, pattern, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return true;
    }

    /// <inheritdoc />
    public bool Matches(string label)
    {
        if (HasLiteral(label))
        {
            return true;
        }

        foreach (var pattern in _wildcards)
        {
            if (pattern.Matches(label))
            {
                return true;
            }
        }

        return false;
    }

    private bool HasLiteral(string label)
    {
        if (_literalSet is not null)
        {
            return _literalSet.Contains(label);
        }

        foreach (var literal in _literals)
        {
            if (string.Equals(literal, label, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }
}
