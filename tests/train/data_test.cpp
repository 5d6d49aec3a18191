// Text-pair loading (text, JSON lines, TSV; plain and gzip), its error messages, length bucketing
// invariants, padding, and the Multi30k files when the data folder is present.
#include <gtest/gtest.h>
#include <gmock/gmock.h>
#include <torch/torch.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <unistd.h>

#include "common/data_paths.h"
#include "common/error.h"
#include "train/data/batching.h"
#include "train/data/text_pairs.h"

namespace chorus::train {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

class TextPairsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("chorus-data-test-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write(const std::string& name, const std::string& content) const {
    std::ofstream(dir_ / name, std::ios::binary) << content;
    return dir_ / name;
  }
  // Written through zlib's gzip writer; the name need not end in .gz (detection is by content).
  fs::path write_gzip(const std::string& name, const std::string& content) const {
    const auto path = dir_ / name;
    gzFile out = gzopen(path.c_str(), "wb");
    EXPECT_NE(out, nullptr);
    EXPECT_EQ(gzwrite(out, content.data(), static_cast<unsigned>(content.size())), static_cast<int>(content.size()));
    EXPECT_EQ(gzclose(out), Z_OK);
    return path;
  }
  static TextPairSource text(const fs::path& s, const fs::path& t) {
    TextPairSource src;
    src.format = TextPairFormat::text;
    src.source_file = s;
    src.target_file = t;
    return src;
  }
  static TextPairSource single(TextPairFormat format, const fs::path& f) {
    TextPairSource src;
    src.format = format;
    src.file = f;
    return src;
  }
  static std::string error_of(const TextPairSource& src, TextPairOptions options = {}) {
    try {
      load_text_pairs(src, options);
    } catch (const Error& e) {
      return e.what();
    }
    return "no error";
  }

  fs::path dir_;
};

TEST_F(TextPairsTest, AlignedTextFilesPlainAndGzip) {
  const std::string en = "A dog runs.\n  Two men  \r\n\nA café.\n";
  const std::string de = "Ein Hund rennt.\nZwei Männer\r\nleer\nEin Café.";  // no final newline
  for (bool gz : {false, true}) {
    const auto s = gz ? write_gzip("src.txt", en) : write("src.txt", en);
    const auto t = gz ? write_gzip("tgt.txt", de) : write("tgt.txt", de);
    EXPECT_EQ(is_gzip_file(s), gz);
    TextPairStats stats;
    const auto pairs = load_text_pairs(text(s, t), {}, &stats);
    ASSERT_EQ(pairs.size(), 3u) << (gz ? "gzip" : "plain");
    EXPECT_EQ(pairs[0].source, "A dog runs.");
    EXPECT_EQ(pairs[1].source, "Two men");  // stripped, "\r\n" ending removed
    EXPECT_EQ(pairs[1].target, "Zwei Männer");
    EXPECT_EQ(pairs[2].source, "A café.");
    EXPECT_EQ(pairs[2].target, "Ein Café.");
    EXPECT_EQ(stats.lines, 4);
    EXPECT_EQ(stats.skipped_empty, 1);
  }
  const auto s = write("s2", " a \n\n");
  const auto t = write("t2", " b \nc\n");
  TextPairOptions keep;
  keep.skip_empty = false;
  keep.strip = false;
  const auto all = load_text_pairs(text(s, t), keep);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].source, " a ");
  EXPECT_EQ(all[1].source, "");
  EXPECT_EQ(all[1].target, "c");
  TextPairOptions first;
  first.max_examples = 1;
  EXPECT_EQ(load_text_pairs(text(s, t), first).size(), 1u);
}

TEST_F(TextPairsTest, JsonLinesWithConfigurableFields) {
  const std::string body =
      "{\"en\": \"hello\", \"de\": \"hallo\", \"id\": 1}\n"
      "\n"
      "{\"de\": \"welt\", \"en\": \"world\"}\n";
  for (bool gz : {false, true}) {
    auto src = single(TextPairFormat::jsonl, gz ? write_gzip("d.jsonl.gz", body) : write("d.jsonl", body));
    src.source_field = "en";
    src.target_field = "de";
    const auto pairs = load_text_pairs(src, {});
    ASSERT_EQ(pairs.size(), 2u);
    EXPECT_EQ(pairs[1].source, "world");
    EXPECT_EQ(pairs[1].target, "welt");
  }
}

TEST_F(TextPairsTest, TsvByIndexAndByHeader) {
  const std::string body = "id\tde\ten\n1\tHallo\tHello\n2\tWelt\tWorld\textra\n";
  auto by_index = single(TextPairFormat::tsv, write_gzip("d.tsv", body));
  by_index.source_column = 2;
  by_index.target_column = 1;
  auto pairs = load_text_pairs(by_index, {});
  ASSERT_EQ(pairs.size(), 3u);  // the header line is data here
  EXPECT_EQ(pairs[0].source, "en");
  EXPECT_EQ(pairs[2].source, "World");

  auto by_name = single(TextPairFormat::tsv, write("d2.tsv", body));
  by_name.header = true;
  by_name.source_field = "en";
  by_name.target_field = "de";
  pairs = load_text_pairs(by_name, {});
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].source, "Hello");
  EXPECT_EQ(pairs[0].target, "Hallo");
  by_name.source_field = "fr";
  EXPECT_THAT(error_of(by_name), AllOf(HasSubstr("d2.tsv:1"), HasSubstr("no column 'fr'"), HasSubstr("'en'")));
}

TEST_F(TextPairsTest, ErrorsNameTheFileAndLine) {
  const auto missing = dir_ / "nope.en";
  EXPECT_THAT(error_of(text(missing, write("t", "x\n"))), AllOf(HasSubstr("nope.en"), HasSubstr("does not exist")));

  // Line-count mismatch gives both counts and both files.
  const auto three = write("three.en", "a\nb\nc\n");
  const auto two = write_gzip("two.de.gz", "a\nb\n");
  EXPECT_THAT(error_of(text(three, two)),
              AllOf(HasSubstr("three.en' has 3 lines"), HasSubstr("two.de.gz' has 2"), HasSubstr("line-aligned")));

  auto bad_json = single(TextPairFormat::jsonl, write("bad.jsonl", "{\"source\": \"a\", \"target\": \"b\"}\n{\"source\": \n"));
  EXPECT_THAT(error_of(bad_json), AllOf(HasSubstr("bad.jsonl:2"), HasSubstr("bad JSON")));
  auto not_object = single(TextPairFormat::jsonl, write("arr.jsonl", "[1, 2]\n"));
  EXPECT_THAT(error_of(not_object), AllOf(HasSubstr("arr.jsonl:1"), HasSubstr("expected a JSON object")));
  auto no_field = single(TextPairFormat::jsonl,
                         write("field.jsonl", "{\"source\": \"a\", \"target\": \"b\"}\n\n{\"source\": \"a\"}\n"));
  EXPECT_THAT(error_of(no_field), AllOf(HasSubstr("field.jsonl:3"), HasSubstr("missing field 'target'")));
  auto not_string = single(TextPairFormat::jsonl, write("num.jsonl", "{\"source\": 3, \"target\": \"b\"}\n"));
  EXPECT_THAT(error_of(not_string), AllOf(HasSubstr("num.jsonl:1"), HasSubstr("field 'source' is number")));

  auto short_row = single(TextPairFormat::tsv, write("rows.tsv", "a\tb\nc\n"));
  EXPECT_THAT(error_of(short_row), AllOf(HasSubstr("rows.tsv:2"), HasSubstr("1 column(s), expected at least 2")));

  const auto latin1 = write("latin1.de", "gut\nsch\xf6n\n");
  EXPECT_THAT(error_of(text(write("ok.en", "good\nnice\n"), latin1)),
              AllOf(HasSubstr("latin1.de:2"), HasSubstr("invalid UTF-8 at byte 4")));

  // A gzip file cut short is reported rather than read as a shorter file.
  const auto whole = write_gzip("whole.gz", std::string(5000, 'x') + "\n");
  std::ifstream in(whole, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto cut = write("cut.gz", bytes.substr(0, bytes.size() - 6));
  EXPECT_THAT(error_of(text(cut, cut)), AllOf(HasSubstr("cut.gz"), HasSubstr("truncated or corrupt")));
}

TEST(LengthBuckets, EveryExampleOnceWithinBudgetDeterministic) {
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < 1000; ++i) lengths.push_back(3 + (i * 37 + i * i) % 60);
  BucketingOptions options;
  options.max_tokens = 256;
  // Padding tokens over real tokens, after checking that every example is in exactly one batch
  // and that every batch keeps within the budget.
  const auto padding_ratio = [&](const std::vector<std::vector<int64_t>>& batches) {
    std::vector<int> seen(lengths.size(), 0);
    int64_t padded = 0, real = 0;
    for (const auto& batch : batches) {
      EXPECT_FALSE(batch.empty());
      int64_t longest = 0;
      for (auto i : batch) {
        ++seen[static_cast<size_t>(i)];
        longest = std::max(longest, lengths[static_cast<size_t>(i)]);
        real += lengths[static_cast<size_t>(i)];
      }
      EXPECT_LE(static_cast<int64_t>(batch.size()) * longest, options.max_tokens);
      padded += static_cast<int64_t>(batch.size()) * longest;
    }
    for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "example " << i;
    return static_cast<double>(padded - real) / static_cast<double>(real);
  };
  const auto a = make_length_buckets(lengths, options, 11, 0);
  const double sorted_widely = padding_ratio(a);
  EXPECT_LT(sorted_widely, 0.05);
  // Small pools sort less and pad more, but keep every invariant.
  options.pool_batches = 1;
  const double sorted_narrowly = padding_ratio(make_length_buckets(lengths, options, 11, 0));
  EXPECT_GT(sorted_narrowly, sorted_widely);
  options.pool_batches = 100;

  EXPECT_EQ(make_length_buckets(lengths, options, 11, 0), a);
  EXPECT_NE(make_length_buckets(lengths, options, 11, 1), a);
  EXPECT_NE(make_length_buckets(lengths, options, 12, 0), a);

  BucketingOptions fixed;
  fixed.batch_size = 7;
  const auto b = make_length_buckets(lengths, fixed, 5, 2);
  size_t total = 0;
  for (const auto& batch : b) {
    EXPECT_LE(batch.size(), 7u);
    total += batch.size();
  }
  EXPECT_EQ(total, lengths.size());

  options.max_tokens = 40;
  try {
    make_length_buckets(lengths, options, 1, 0);
    FAIL() << "an example longer than max_tokens was accepted";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("more than max_tokens = 40"));
  }
  EXPECT_THROW(make_length_buckets(lengths, BucketingOptions{}, 1, 0), Error);
}

TEST(LengthBuckets, EpochStreamIsAPureFunctionOfTheIndex) {
  std::vector<int64_t> lengths;
  for (int64_t i = 0; i < 200; ++i) lengths.push_back(1 + i % 17);
  BucketingOptions options;
  options.batch_size = 16;
  options.max_tokens = 128;
  const auto epoch0 = make_length_buckets(lengths, options, 3, 0);
  const auto epoch1 = make_length_buckets(lengths, options, 3, 1);
  EpochBatches stream(lengths, options, 3);
  const auto n0 = static_cast<int64_t>(epoch0.size());
  // Out of order, as a resumed run asks.
  EXPECT_EQ(stream.batch(n0 + 2).examples, epoch1[2]);
  EXPECT_EQ(stream.batch(n0 + 2).epoch, 1);
  EXPECT_EQ(stream.batch(0).examples, epoch0[0]);
  EXPECT_EQ(stream.batch(n0 - 1).examples, epoch0.back());
  EpochBatches fresh(lengths, options, 3);
  EXPECT_EQ(fresh.batch(5 * n0).examples, stream.batch(5 * n0).examples);
}

TEST(LengthLimits, TruncateKeepsEosDropRemoves) {
  TokenizedPairs data;
  data.sources = {{5, 6, 1}, {5, 6, 7, 8, 9, 1}, {4, 1}};
  data.targets = {{7, 1}, {8, 1}, {9, 9, 9, 9, 9, 1}};
  auto cut = data;
  const auto t = limit_lengths(cut, 4, OverLength::truncate, 1);
  EXPECT_EQ(t.truncated, 2);
  EXPECT_EQ(t.dropped, 0);
  EXPECT_EQ(cut.sources[1], (std::vector<int64_t>{5, 6, 7, 1}));
  EXPECT_EQ(cut.targets[2], (std::vector<int64_t>{9, 9, 9, 1}));
  EXPECT_EQ(cut.lengths(), (std::vector<int64_t>{3, 4, 4}));
  auto kept = data;
  const auto d = limit_lengths(kept, 4, OverLength::drop, 1);
  EXPECT_EQ(d.dropped, 2);
  ASSERT_EQ(kept.size(), 1u);
  EXPECT_EQ(kept.sources[0], data.sources[0]);
}

TEST(Padding, TokenBatchFromIds) {
  TokenizedPairs data;
  data.sources = {{5, 6, 1}, {4, 1}};
  data.targets = {{7, 1}, {8, 9, 10, 1}};
  const auto batch = make_token_batch(data, {1, 0}, 0);
  EXPECT_TRUE(torch::equal(batch.input_ids, torch::tensor({4, 1, 0, 5, 6, 1}, torch::kInt64).view({2, 3})));
  EXPECT_TRUE(torch::equal(batch.attention_mask, torch::tensor({1, 1, 0, 1, 1, 1}, torch::kInt64).view({2, 3})));
  EXPECT_TRUE(
      torch::equal(batch.labels, torch::tensor({8, 9, 10, 1, 7, 1, -100, -100}, torch::kInt64).view({2, 4})));
  EXPECT_THROW(make_token_batch(data, {2}, 0), Error);
}

TEST(Multi30k, TrainingSplitLoadsAligned) {
  const auto en = find_data_file("multi30k/train.en.gz");
  const auto de = find_data_file("multi30k/train.de.gz");
  if (!en || !de) GTEST_SKIP() << "the Multi30k data folder is absent (set CHORUS_DATA or place it at ../shared/data)";
  TextPairSource src;
  src.source_file = *en;
  src.target_file = *de;
  TextPairOptions options;
  options.skip_empty = false;
  TextPairStats stats;
  const auto pairs = load_text_pairs(src, options, &stats);
  EXPECT_EQ(pairs.size(), 29000u);
  EXPECT_EQ(stats.lines, 29000);
  EXPECT_FALSE(pairs.front().source.empty());
  EXPECT_FALSE(pairs.back().target.empty());
}

}  // namespace
}  // namespace chorus::train
