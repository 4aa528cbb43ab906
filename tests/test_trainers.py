"""ReportCallback beyond SFTTrainer: a plain transformers Trainer, another TRL trainer, PEFT."""

from __future__ import annotations

from pathlib import Path

from helpers import only_report, report_files, run_titles

from trl_reporter import ReportCallback
from trl_reporter.tiny import texts


def test_plain_transformers_trainer(project: Path, tiny_model: Path) -> None:
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    dataset = Dataset.from_dict({"text": texts(32)}).map(
        lambda batch: tokenizer(batch["text"]), batched=True, remove_columns=["text"]
    )
    args = TrainingArguments(
        output_dir="out/plain", max_steps=4, use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True
    )
    Trainer(
        model=AutoModelForCausalLM.from_pretrained(tiny_model),
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        callbacks=[ReportCallback],
    ).train()

    report = only_report(project)
    assert report_files(project)[0].name == "plain.md"
    [(_, _, status)] = run_titles(report)
    assert status == "Success"
    assert "| Trainer | Trainer (" in report
    assert "| Max Sequence Length |" not in report  # a TRL-only setting is not invented for Trainer


def test_dpo_trainer(project: Path, tiny_model: Path) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    pairs = Dataset.from_dict(
        {
            "prompt": ["the quick brown fox", "a training report"] * 4,
            "chosen": [" jumps over the lazy dog", " tells the story of every run"] * 4,
            "rejected": [" report the fox", " the dog"] * 4,
        }
    )
    args = DPOConfig(
        output_dir="out/dpo-tiny",
        max_steps=2,
        per_device_train_batch_size=2,
        max_length=32,
        use_cpu=True,
        bf16=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    DPOTrainer(
        model=str(tiny_model),
        args=args,
        train_dataset=pairs,
        processing_class=AutoTokenizer.from_pretrained(tiny_model),
        callbacks=[ReportCallback()],
    ).train()

    report = only_report(project)
    [(_, _, status)] = run_titles(report)
    assert status == "Success"
    assert "| Trainer | DPOTrainer (trl " in report


def test_peft_model_reports_lora_settings_and_its_base_model(project: Path, tiny_model: Path) -> None:
    from datasets import Dataset
    from helpers import sft_config
    from peft import LoraConfig
    from trl import SFTTrainer

    SFTTrainer(
        model=str(tiny_model),
        args=sft_config(),
        train_dataset=Dataset.from_dict({"text": texts(32)}),
        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"]),
        callbacks=[ReportCallback()],
    ).train()

    report = only_report(project)
    assert "| LoRA | LORA: r=4, alpha=8, dropout=0.0, targets q\\_proj, v\\_proj |" in report
    assert " trainable of " in report
    assert f"Base Model: `{tiny_model}` (local path)" in report
