using HookBroker.Broker.Core;

namespace HookBroker.Broker.Tests.Core;

/// <summary>The naming rules of labels, patterns and groups, and how patterns match labels.</summary>
public sealed class LabelRulesTests
{
    [Theory]
    [InlineData("user_created")]
    [InlineData("a")]
    [InlineData("user.created")]
    [InlineData("Billing.Invoice-Paid:v2")]
    [InlineData("0123456789")]
    [InlineData("user.")]
    public void Valid_labels_pass(string label) => Assert.Null(LabelRules.CheckLabel(label));

    [Fact]
    public void A_label_of_exactly_200_chars_passes_and_201_fails_naming_the_limit()
    {
        Assert.Null(LabelRules.CheckLabel(new string('a', 200)));

        var problem = LabelRules.CheckLabel(new string('a', 201));

        Assert.Equal("event is 201 chars long; labels are at most 200 chars of [A-Za-z0-9_.:-]", problem);
    }

    [Theory]
    [InlineData(null, "event is required: a label of 1-200 chars of [A-Za-z0-9_.:-]")]
    [InlineData("", "event is required: a label of 1-200 chars of [A-Za-z0-9_.:-]")]
    [InlineData("user created", "event 'user created' contains '\\u0020'; labels use only [A-Za-z0-9_.:-]")]
    [InlineData("user/created", "event 'user/created' contains '/'; labels use only [A-Za-z0-9_.:-]")]
    [InlineData("user\tcreated", "event 'user\tcreated' contains '\\u0009'; labels use only [A-Za-z0-9_.:-]")]
    [InlineData("user.*", "event 'user.*' contains '*'; labels use only [A-Za-z0-9_.:-]")]
    [InlineData("billing.>", "event 'billing.>' contains '>'; labels use only [A-Za-z0-9_.:-]")]
    [InlineData("café", "event 'café' contains 'é'; labels use only [A-Za-z0-9_.:-]")]
    public void Invalid_labels_are_refused_with_a_message_naming_the_rule(string? label, string expected) =>
        Assert.Equal(expected, LabelRules.CheckLabel(label));

    [Fact]
    public void The_field_name_and_a_shortened_value_appear_in_the_message()
    {
        var problem = LabelRules.CheckLabel(new string('a', 100) + " ", "items[3].event");

        Assert.Equal($"items[3].event '{new string('a', 57)}...' contains '\\u0020'; labels use only [A-Za-z0-9_.:-]", problem);
    }

    [Theory]
    [InlineData("user_created")]
    [InlineData("user.*")]
    [InlineData("billing.>")]
    [InlineData("*")]
    [InlineData(">")]
    [InlineData("*.>")]
    [InlineData("a.*.c")]
    [InlineData("*.*")]
    [InlineData("orders:v2.*")]
    public void Valid_patterns_pass(string pattern) => Assert.Null(LabelRules.CheckPattern(pattern));

    [Theory]
    [InlineData(null, "empty pattern")]
    [InlineData("", "empty pattern")]
    [InlineData("user*", "pattern 'user*' uses '*' inside a segment")]
    [InlineData("*user", "pattern '*user' uses '*' inside a segment")]
    [InlineData("user.cre*", "pattern 'user.cre*' uses '*' inside a segment")]
    [InlineData("billing>", "pattern 'billing>' uses '>' inside a segment")]
    [InlineData("a.>.b", "pattern 'a.>.b' has '>' before its last segment")]
    [InlineData(">.a", "pattern '>.a' has '>' before its last segment")]
    [InlineData("a.>.>", "pattern 'a.>.>' has '>' before its last segment")]
    [InlineData("user created", "pattern 'user created' contains '\\u0020'")]
    [InlineData("user/*", "pattern 'user/*' contains '/'")]
    public void Invalid_patterns_are_refused_with_a_message_naming_the_rule(string? pattern, string expected)
    {
        var problem = LabelRules.CheckPattern(pattern, "subscribe.events");

        Assert.NotNull(problem);
        Assert.StartsWith("subscribe.events", problem, StringComparison.Ordinal);
        Assert.Contains(expected, problem, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pattern_of_201_chars_is_refused_naming_the_limit()
    {
        Assert.Null(LabelRules.CheckPattern(new string('a', 198) + ".*"));

        Assert.Equal("events pattern is 201 chars long; at most 200", LabelRules.CheckPattern(new string('a', 199) + ".*"));
    }

    [Theory]
    [InlineData("email-sender")]
    [InlineData("a")]
    [InlineData("Audit_v2.eu-west")]
    public void Valid_group_names_pass(string group) => Assert.Null(LabelRules.CheckGroup(group));

    [Theory]
    [InlineData(null, "group is required: 1-100 chars of [A-Za-z0-9_.-] (e.g. 'email-sender')")]
    [InlineData("", "group is required: 1-100 chars of [A-Za-z0-9_.-] (e.g. 'email-sender')")]
    [InlineData("email/sender", "group 'email/sender' contains '/'; group names use only [A-Za-z0-9_.-]")]
    [InlineData("email:sender", "group 'email:sender' contains ':'; group names use only [A-Za-z0-9_.-]")]
    [InlineData("email sender", "group 'email sender' contains '\\u0020'; group names use only [A-Za-z0-9_.-]")]
    [InlineData("email*", "group 'email*' contains '*'; group names use only [A-Za-z0-9_.-]")]
    public void Invalid_group_names_are_refused_with_a_message_naming_the_rule(string? group, string expected) =>
        Assert.Equal(expected, LabelRules.CheckGroup(group));

    [Fact]
    public void A_group_name_of_100_chars_passes_and_101_fails_naming_the_limit()
    {
        Assert.Null(LabelRules.CheckGroup(new string('g', 100)));

        Assert.Equal("group is 101 chars long; group names are at most 100 chars of [A-Za-z0-9_.-]", LabelRules.CheckGroup(new string('g', 101)));
    }

    [Theory]
    [InlineData("user.*", "user.created", true)]
    [InlineData("user.*", "user.deleted", true)]
    [InlineData("user.*", "user", false)]
    [InlineData("user.*", "user.a.b", false)]
    [InlineData("user.*", "users.created", false)]
    [InlineData("user.*", "username", false)]
    [InlineData("user.*", "account.user.created", false)]
    [InlineData("billing.>", "billing.a", true)]
    [InlineData("billing.>", "billing.a.b", true)]
    [InlineData("billing.>", "billing.invoice.paid.late", true)]
    [InlineData("billing.>", "billing", false)]
    [InlineData("billing.>", "billingx.a", false)]
    [InlineData("billing.>", "shop.billing.a", false)]
    [InlineData("*", "user", true)]
    [InlineData("*", "user_created", true)]
    [InlineData("*", "user.created", false)]
    [InlineData(">", "user", true)]
    [InlineData(">", "user.created.now", true)]
    [InlineData("*.>", "user", false)]
    [InlineData("*.>", "user.created", true)]
    [InlineData("*.>", "user.created.now", true)]
    [InlineData("user_created", "user_created", true)]
    [InlineData("user_created", "user_created.x", false)]
    [InlineData("user_created", "User_created", false)]
    [InlineData("user_created", "user_create", false)]
    [InlineData("a.*.c", "a.b.c", true)]
    [InlineData("a.*.c", "a.xyz.c", true)]
    [InlineData("a.*.c", "a.b", false)]
    [InlineData("a.*.c", "a.c", false)]
    [InlineData("a.*.c", "a.b.c.d", false)]
    [InlineData("a.*.c", "x.b.c", false)]
    [InlineData("a.*.c", "a.b.x", false)]
    [InlineData("*.*", "a.b", true)]
    [InlineData("*.*", "a", false)]
    [InlineData("*.*", "a.b.c", false)]
    public void Patterns_match_labels_segment_by_segment(string pattern, string label, bool matches) =>
        Assert.Equal(matches, LabelPattern.Parse(pattern).Matches(label));

    [Fact]
    public void Parse_knows_literals_from_wildcards_and_refuses_invalid_patterns()
    {
        Assert.True(LabelPattern.Parse("user_created").IsLiteral);
        Assert.False(LabelPattern.Parse("user.*").IsLiteral);
        Assert.False(LabelPattern.Parse("billing.>").IsLiteral);
        Assert.Equal("a.*.c", LabelPattern.Parse("a.*.c").Text);

        var error = Assert.Throws<ArgumentException>(() => LabelPattern.Parse("a.>.b"));
        Assert.Contains("'>' may only be the last segment", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pattern_set_matches_when_any_of_its_patterns_does_and_keeps_each_pattern_once()
    {
        var set = new PatternSet(["user_created", "user.*", "billing.>", "user_created", "user.*"]);

        Assert.Equal(3, set.Patterns.Count);
        Assert.Equal(["billing.>", "user.*", "user_created"], set.Patterns.Order(StringComparer.Ordinal));
        Assert.True(set.Matches("user_created"));
        Assert.True(set.Matches("user.deleted"));
        Assert.True(set.Matches("billing.invoice.paid"));
        Assert.False(set.Matches("user"));
        Assert.False(set.Matches("user.a.b"));
        Assert.False(set.Matches("billing"));
        Assert.False(set.Matches("order_created"));
    }

    [Theory]
    [InlineData(3)]
    [InlineData(50)]
    public void A_pattern_set_of_few_or_many_literals_matches_each_and_compares_as_a_set(int count)
    {
        var literals = Enumerable.Range(0, count).Select(i => $"label_{i}").ToArray();
        var set = new PatternSet([.. literals, "other.*"]);

        Assert.All(literals, l => Assert.True(set.Matches(l)));
        Assert.True(set.Matches("other.x"));
        Assert.False(set.Matches($"label_{count}"));
        Assert.True(set.HasExactly([.. literals.Reverse(), "other.*"]));
        Assert.False(set.HasExactly([.. literals.Skip(1), "other.*", "label_x"]));
        Assert.False(set.HasExactly(literals));
    }

    [Fact]
    public void An_empty_pattern_set_matches_nothing_and_an_invalid_pattern_is_refused()
    {
        var empty = new PatternSet([]);
        Assert.Empty(empty.Patterns);
        Assert.False(empty.Matches("user_created"));

        Assert.Throws<ArgumentException>(() => new PatternSet(["user_created", "user*"]));
    }
}
